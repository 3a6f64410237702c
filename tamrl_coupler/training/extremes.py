"""The days where a flux model is least trained: each site's hottest and driest days, and known drought summers.

Why per site: a day that is extreme at a boreal tower is ordinary at a savanna one; what a user asks is whether the
model holds on *her* site's worst days. Masks are (site, time) booleans on a dataset's axis.
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.data.dataset import FluxDataset

# known European drought-and-heat summers (June-August) and the box that counts as Europe (degrees)
DROUGHT_SUMMERS = (2003, 2018)
EUROPE = {"lat": (34.0, 72.0), "lon": (-25.0, 45.0)}


def _temperature(data: FluxDataset) -> np.ndarray:
    if "tmean" in data.drivers:
        return np.asarray(data.drivers["tmean"], float)
    return 0.5 * (np.asarray(data.drivers["tmin"], float) + np.asarray(data.drivers["tmax"], float))


def hot_dry_days(data: FluxDataset, vpd_q: float = 0.95, t_q: float = 0.90) -> np.ndarray:
    """(S, T) True on the days whose VPD is at or above the site's ``vpd_q`` quantile *and* whose air temperature
    is at or above its ``t_q`` quantile (quantiles over the site's days that have both)."""
    t, v = _temperature(data), np.asarray(data.drivers["vpd"], float)
    ok = np.isfinite(t) & np.isfinite(v)
    out = np.zeros(t.shape, dtype=bool)
    for s in range(data.n_sites):
        if ok[s].sum() < 20:
            continue
        tq, vq = np.quantile(t[s, ok[s]], t_q), np.quantile(v[s, ok[s]], vpd_q)
        out[s] = ok[s] & (t[s] >= tq) & (v[s] >= vq)
    return out


def in_europe(data: FluxDataset) -> np.ndarray:
    """(S,) True for sites inside :data:`EUROPE`."""
    (la0, la1), (lo0, lo1) = EUROPE["lat"], EUROPE["lon"]
    return (data.lat >= la0) & (data.lat <= la1) & (data.lon >= lo0) & (data.lon <= lo1)


def drought_summer(data: FluxDataset, year: int) -> np.ndarray:
    """(S, T) True on June-August of ``year`` at European sites."""
    when = np.asarray(data.time).astype("datetime64[M]").astype(np.int64)
    y, m = when // 12 + 1970, when % 12 + 1
    days = (y == year) & (m >= 6) & (m <= 8)
    return in_europe(data)[:, None] & days[None, :]


def extreme_masks(data: FluxDataset) -> dict[str, np.ndarray]:
    """The named subsets the CV report scores: hot-dry days, and each drought summer that the data hold."""
    masks = {"hot-dry days (VPD >= site q95, T >= site q90)": hot_dry_days(data)}
    has_obs = np.isfinite(data.targets["gpp"]) if "gpp" in data.targets else np.ones((data.n_sites, 1), bool)
    for year in DROUGHT_SUMMERS:
        m = drought_summer(data, year)
        if (m & has_obs).any():
            masks[f"summer {year}, Europe (JJA)"] = m
    return masks
