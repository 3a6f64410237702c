"""Climate zones of sites from their own drivers: a Köppen-like main class from temperature and precipitation normals.

Why from the drivers: a host knows its cells' forcing, not a climate atlas, and the scores per zone should group
sites the way the model sees them. The rules are Köppen-Geiger's main groups as in Kottek et al. (2006, Meteorol.
Z. 15:259), on the mean seasonal cycle of the site's record (each calendar month's mean temperature and
precipitation over the years the site has):

    E polar:        warmest month < 10 degC
    B arid:         annual precipitation < 10 * P_th mm, P_th = 2 * MAT (+28 when >= 2/3 of it falls in the summer
                    half-year, +0 when >= 2/3 falls in winter, +14 otherwise; MAT in degC)
    A tropical:     coldest month >= 18 degC
    C temperate:    coldest month in (-3, 18) degC; "Cs" when its summer is dry (driest summer month < 40 mm and
                    < 1/3 of the wettest winter month), else "C"
    D continental:  coldest month <= -3 degC

in that order (E before B before the temperature classes). Summer is April-September north of the equator and
October-March south of it.
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.data.dataset import FluxDataset

ZONES = ("A", "B", "C", "Cs", "D", "E")
ZONE_NAMES = {"A": "tropical", "B": "arid", "C": "temperate, no dry summer", "Cs": "temperate, dry summer",
              "D": "continental", "E": "polar"}
DAYS_IN_MONTH = np.array([31, 28.25, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def monthly_normals(data: FluxDataset) -> tuple[np.ndarray, np.ndarray]:
    """Mean temperature (degC) and precipitation (mm per month) of each calendar month, (S, 12), NaN where a
    site has no value in that calendar month. Temperature: ``tmean``, else the mean of ``tmin`` and ``tmax``."""
    if "tmean" in data.drivers:
        t = np.asarray(data.drivers["tmean"], float)
    else:
        t = 0.5 * (np.asarray(data.drivers["tmin"], float) + np.asarray(data.drivers["tmax"], float))
    p = np.asarray(data.drivers["precip"], float)  # mm d-1 (a period's mean rate)
    month = np.asarray(data.time).astype("datetime64[M]").astype(np.int64) % 12
    tn = np.full((data.n_sites, 12), np.nan)
    pn = np.full((data.n_sites, 12), np.nan)
    with np.errstate(invalid="ignore"):
        for m in range(12):
            sel = month == m
            if not sel.any():
                continue
            ts, ps = t[:, sel], p[:, sel]
            nt, npr = np.isfinite(ts).sum(axis=1), np.isfinite(ps).sum(axis=1)
            tn[:, m] = np.where(nt > 0, np.nansum(ts, axis=1) / np.maximum(nt, 1), np.nan)
            pn[:, m] = np.where(npr > 0, np.nansum(ps, axis=1) / np.maximum(npr, 1), np.nan) * DAYS_IN_MONTH[m]
    return tn, pn


def koppen_zone(t: np.ndarray, p: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Köppen-like main class (:data:`ZONES`) per site from (S, 12) monthly normals (degC, mm per month) and the
    latitude (degrees; the summer half-year); "" where a calendar month lacks a normal."""
    t, p = np.atleast_2d(np.asarray(t, float)), np.atleast_2d(np.asarray(p, float))
    lat = np.broadcast_to(np.asarray(lat, float), (t.shape[0],))
    out = np.full(t.shape[0], "", dtype=object)
    north = np.arange(3, 9)  # April-September
    south = np.r_[np.arange(0, 3), np.arange(9, 12)]
    for s in range(t.shape[0]):
        if not (np.isfinite(t[s]).all() and np.isfinite(p[s]).all()):
            continue
        summer, winter = (north, south) if not lat[s] < 0 else (south, north)
        tmax, tmin, mat, pann = t[s].max(), t[s].min(), t[s].mean(), p[s].sum()
        share = p[s, summer].sum() / pann if pann > 0 else 0.5
        pth = 2.0 * mat + (28.0 if share >= 2 / 3 else 0.0 if share <= 1 / 3 else 14.0)
        if tmax < 10.0:
            out[s] = "E"
        elif pann < 10.0 * pth:
            out[s] = "B"
        elif tmin >= 18.0:
            out[s] = "A"
        elif tmin > -3.0:
            dry_summer = p[s, summer].min() < 40.0 and p[s, summer].min() < p[s, winter].max() / 3.0
            out[s] = "Cs" if dry_summer else "C"
        else:
            out[s] = "D"
    return out.astype(str)


def site_zones(data: FluxDataset) -> np.ndarray:
    """Köppen-like zone of every site of ``data`` from its drivers (see the module docstring)."""
    t, p = monthly_normals(data)
    return koppen_zone(t, p, data.lat)
