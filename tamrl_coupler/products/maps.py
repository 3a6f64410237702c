"""Maps people read: a run's time-mean NEE, and an inversion prior's NEE with its uncertainty.

Both in gC m-2 d-1 whatever unit the file holds (the units library's factor), uptake green and release brown in
either sign convention (the colour bar says which formula the numbers follow), the colour scale set by the 98th
percentile of |value| weighted by land area (a few small island cells cannot stretch it), ocean shaded, cells of the
run's map shaded by their land fraction, and real coastlines (GSHHG, shipped by a package: nothing is downloaded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tamrl_coupler.constants import SECONDS_PER_DAY
from tamrl_coupler.errors import InputError
from tamrl_coupler.io.fluxfile import read_flux_file
from tamrl_coupler.ncfiles import open_netcdf, parse_time_units
from tamrl_coupler.physics.carbon import SignConvention
from tamrl_coupler.physics.units import flux_unit
from tamrl_coupler.products.figures import coast_source, label_ends, map_panel, pyplot, save_png, weighted_percentile
from tamrl_coupler.regrid.grid import latlon_cell_areas

UNIT_LABEL = "gC m$^{-2}$ d$^{-1}$"
PERCENTILE = 98.0


def _cell_weights(lat: np.ndarray, lon: np.ndarray, lat_b: np.ndarray | None, lon_b: np.ndarray | None,
                  fraction: np.ndarray) -> np.ndarray:
    """Land area of each cell (any unit): cell area (exact from bounds, else cos(lat) for uniform cells) x fraction."""
    if lat_b is not None and lon_b is not None:
        area = latlon_cell_areas(lat_b, lon_b).reshape(lat.size, lon.size)
    else:
        area = np.repeat(np.cos(np.deg2rad(lat))[:, None], lon.size, axis=1)
    return area * np.nan_to_num(fraction)


def _positive(limit: float) -> float:
    """A colour limit, 1 when there is nothing to scale by (an all-zero or empty field)."""
    return limit if np.isfinite(limit) and limit > 0 else 1.0


def _nee_colours(convention: SignConvention) -> str:
    """Uptake green, release brown: BrBG's high end is green, so it is reversed when uptake is negative."""
    return "BrBG" if convention is SignConvention.UPTAKE_POSITIVE else "BrBG_r"


def _nee_ends(colorbar, convention: SignConvention) -> None:
    up = convention is SignConvention.UPTAKE_POSITIVE
    label_ends(colorbar, "release" if up else "uptake", "uptake" if up else "release")


def _period(starts: np.datetime64, end: np.datetime64, days: float) -> str:
    return f"{str(starts)[:10]} to {str(end)[:10]} ({days:g} days)"


def nee_map(flux_file: Path, png: Path) -> Path:
    """Time-mean NEE of a run on its (regular) host grid, land cells only, written atomically to ``png``."""
    ff = read_flux_file(flux_file, ("nee",))
    if ff.grid.kind != "regular":
        raise InputError(f"{flux_file}: the NEE map needs a regular lat-lon host grid (this run is on points)")
    lat, lon = ff.grid.lat, ff.grid.lon
    nee = ff.fields["nee"] / ff.unit.factor  # gC m-2 d-1
    length = ff.bounds[:, 1] - ff.bounds[:, 0]
    with np.errstate(invalid="ignore"):
        w = np.where(np.isfinite(nee), length[:, None, None], 0.0)
        mean = np.where(w.sum(axis=0) > 0, np.nansum(nee * w, axis=0) / np.maximum(w.sum(axis=0), 1e-300), np.nan)
    weights = _cell_weights(lat, lon, ff.grid.lat_bounds, ff.grid.lon_bounds, ff.landfrac)
    lim = _positive(weighted_percentile(np.abs(mean), weights, PERCENTILE))
    land_mean = np.nansum(mean * weights) / max(np.sum(weights[np.isfinite(mean)]), 1e-300)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=100)
    mesh = map_panel(ax, lat, lon, mean, ff.landfrac, cmap=_nee_colours(ff.convention), vmin=-lim, vmax=lim)
    cb = fig.colorbar(mesh, ax=ax, shrink=0.8, extend="both", pad=0.02)
    cb.set_label(f"NEE [{UNIT_LABEL}], {ff.convention.formula}", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    _nee_ends(cb, ff.convention)
    days = (ff.bounds[-1, 1] - ff.bounds[0, 0]) / SECONDS_PER_DAY if len(length) else 0.0
    end = ff.reference + np.timedelta64(int(ff.bounds[-1, 1]), "s") if len(length) else ff.reference
    ax.set_title(f"TAM-RL net ecosystem exchange, mean of {_period(ff.starts[0], end, days)}", fontsize=10)
    fig.tight_layout(rect=(0.0, 0.07, 1.0, 1.0))
    fig.text(0.01, 0.01, f"land-area mean {land_mean:+.3f} {UNIT_LABEL}; colours saturate at the {PERCENTILE:g}th "
             f"percentile of |NEE| by land area; each cell's opacity is its land fraction\n{coast_source()}",
             fontsize=7, color="#333333", va="bottom")
    return save_png(fig, png)


def prior_map(prior_file: Path, png: Path) -> Path:
    """An inversion prior file's time-mean NEE (per m2 of grid cell) and its 1-sigma uncertainty, in gC m-2 d-1."""
    with open_netcdf(prior_file, "prior file") as ds:
        where = f"prior file {prior_file}"
        for name in ("nee", "nee_uncertainty", "lat", "lon", "time_bnds"):
            if name not in ds.variables:
                raise InputError(f"{where}: variable {name!r} is missing")
        if ds["nee"].ndim != 3:
            raise InputError(f"{where}: the map needs NEE on (time, lat, lon), it has {ds['nee'].dimensions}")
        lat, lon = (np.asarray(ds[c][:], dtype=np.float64) for c in ("lat", "lon"))
        lat_b, lon_b = (np.asarray(ds[f"{c}_bnds"][:], dtype=np.float64) if f"{c}_bnds" in ds.variables else None
                        for c in ("lat", "lon"))
        to_gc = 1.0 / flux_unit(str(ds["nee"].units)).factor  # mol (of CO2 = of C) m-2 s-1 -> gC m-2 d-1
        nee = np.ma.filled(ds["nee"][:].astype(np.float64), np.nan) * to_gc
        sd = np.ma.filled(ds["nee_uncertainty"][:].astype(np.float64), np.nan) * to_gc
        convention = SignConvention.parse(ds.getncattr("sign_convention"))
        scale, reference = parse_time_units(ds["time"].units, where)
        tb = np.asarray(ds["time_bnds"][:], dtype=np.float64) * scale
        frequency = str(getattr(ds, "frequency", ""))
        meaning = str(getattr(ds, "spread_meaning", ""))
    what = ("calibrated predictive SD at an unseen site, tower scale" if meaning.startswith("calibrated predictive")
            else "members' SD" if meaning.startswith("standard deviation of the ensemble") else "1 sigma")
    length = tb[:, 1] - tb[:, 0]
    mean = np.tensordot(length, nee, axes=1) / length.sum()
    sd_mean = np.tensordot(length, sd, axes=1) / length.sum()
    land = (np.abs(sd_mean) > 0).astype(np.float64)  # cells the prior has land flux in
    weights = _cell_weights(lat, lon, lat_b, lon_b, land)
    lim = _positive(weighted_percentile(np.abs(mean), weights, PERCENTILE))
    top = _positive(weighted_percentile(sd_mean, weights, PERCENTILE))
    mean[land == 0] = np.nan
    sd_mean[land == 0] = np.nan
    start = reference + np.timedelta64(int(tb[0, 0]), "s")
    end = reference + np.timedelta64(int(tb[-1, 1]), "s")
    plt = pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(8, 7.6), dpi=100)
    for ax, field, kw, label in (
            (axes[0], mean, dict(cmap=_nee_colours(convention), vmin=-lim, vmax=lim),
             f"NEE prior [{UNIT_LABEL}], {convention.formula}"),
            (axes[1], sd_mean, dict(cmap="YlOrRd", vmin=0.0, vmax=top), f"1-sigma uncertainty [{UNIT_LABEL}]")):
        mesh = map_panel(ax, lat, lon, field, land, shade_by_land=False, **kw)  # per m2 of cell: land-weighted
        cb = fig.colorbar(mesh, ax=ax, shrink=0.85, extend="both" if ax is axes[0] else "max", pad=0.02)
        cb.set_label(label, fontsize=8)
        cb.ax.tick_params(labelsize=7)
        if ax is axes[0]:
            _nee_ends(cb, convention)
    days = (tb[-1, 1] - tb[0, 0]) / SECONDS_PER_DAY
    axes[0].set_title(f"Inversion prior: mean of the {len(tb)} {frequency} windows, {_period(start, end, days)}, "
                      "per m$^2$ of grid cell", fontsize=9)
    axes[1].set_title(f"Its uncertainty ({what}), same windows; {coast_source()}", fontsize=9)
    fig.tight_layout()
    return save_png(fig, png)
