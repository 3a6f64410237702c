"""Inversion priors: NEE and its uncertainty on a target grid, 3-hourly/daily/monthly means, mol CO2 m-2 s-1,
positive to the atmosphere (what CarbonTracker, CAMS and OCO-2 MIP systems read).

The coupled run's NEE is per m2 of *land*; an inversion wants flux per m2 of *grid cell*, so NEE is multiplied by
the host land fraction before the conservative remap to the target grid (area-weighted, destination-area
normalised), which keeps the global total. The uncertainty is the checkpoint's spread (for the shipped checkpoints a
calibrated predictive standard deviation) treated the same way; its time mean is the mean of the spreads (errors
taken as fully correlated within an averaging window: an upper bound). What the file says about itself (the
uncertainty's meaning and error correlation, the checkpoint, ACDD metadata) is made by ``prior_metadata.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.constants import EARTH_RADIUS, SECONDS_PER_DAY
from tamrl_coupler.errors import InputError
from tamrl_coupler.io.cfcoords import HostGridInfo
from tamrl_coupler.io.fluxfile import flux_file_totals, read_flux_file
from tamrl_coupler.io.priorfile import write_prior_file
from tamrl_coupler.ncfiles import open_netcdf
from tamrl_coupler.physics.carbon import SignConvention, convert_nee
from tamrl_coupler.physics.units import flux_unit
from tamrl_coupler.products.prior_metadata import prior_attributes, uncertainty_attributes
from tamrl_coupler.settings.run import GridKind, PriorSection, RunConfig

FREQUENCIES = {"3hourly": SECONDS_PER_DAY // 8, "daily": SECONDS_PER_DAY, "monthly": None}


def _window_keys(t0: np.ndarray, t1: np.ndarray, reference: np.datetime64, frequency: str) -> np.ndarray:
    """The averaging window of each step (steps must not straddle windows)."""
    start = reference + t0.astype("timedelta64[s]")
    end = reference + t1.astype("timedelta64[s]")
    if frequency == "monthly":
        k0, k1 = start.astype("datetime64[M]"), (end - np.timedelta64(1, "s")).astype("datetime64[M]")
    else:
        sec = FREQUENCIES[frequency]
        k0, k1 = t0 // sec, (t1 - 1) // sec  # the reference date is at 00:00 UTC
    if (k0 != k1).any():
        i = int(np.flatnonzero(k0 != k1)[0])
        raise InputError(f"prior frequency {frequency!r}: coupling step {start[i]}..{end[i]} is longer than one "
                         f"averaging window; choose a coarser frequency")
    return np.asarray(k0).astype(np.int64)


def _refuse_missing_on_land(flux_file: Path, fields: dict[str, np.ndarray], landfrac: np.ndarray) -> None:
    """NaN (a fill value) of NEE or its spread on a land cell is refused, never written as a zero flux: off land
    the per-cell flux is 0 by definition, on land a missing value has no value to give an inversion."""
    land = np.broadcast_to(np.asarray(landfrac) > 0, fields["nee"].shape[1:])
    for name in ("nee", "nee_spread"):
        bad = np.isnan(fields[name]) & land
        if bad.any():
            rec, *cell = (int(i[0]) for i in np.nonzero(bad))
            raise InputError(f"{flux_file}: '{name}' is missing (NaN or a fill value) on a land cell (record {rec}, "
                             f"cell {tuple(cell)}; {int(bad.sum())} values in all): a prior would take it for a zero "
                             f"flux; make the flux file again without gaps")


def write_prior(flux_file: Path, section: PriorSection, out_dir: Path, cfg: RunConfig | None = None,
                attributes: dict[str, Any] | None = None, provenance: dict[str, str] | None = None) -> Path:
    """Aggregate and remap a flux file into a prior file ``{prefix}_{frequency}.nc`` in ``out_dir``; ``cfg`` (the
    run's config) resolves a grid file named relative to it. ``attributes``: more global attributes (a budget
    mode ...); ``provenance``: the checkpoint's identity where the flux file does not record it."""
    frequency = section.frequency
    if frequency not in FREQUENCIES:
        raise InputError(f"prior.frequency: {frequency!r}; expected one of {sorted(FREQUENCIES)}")
    ff = read_flux_file(flux_file, ("nee", "nee_spread"))
    tb, tunits, reference, grid = ff.bounds, ff.time_units, ff.reference, ff.grid
    if tb.shape[0] == 0:
        raise InputError(f"{flux_file}: no time records to make a prior from")
    to_mol = flux_unit("molCO2 m-2 s-1").factor / ff.unit.factor
    lf = ff.landfrac
    _refuse_missing_on_land(flux_file, ff.fields, lf)
    nee = convert_nee(np.nan_to_num(ff.fields["nee"], nan=0.0) * to_mol, ff.convention,
                      SignConvention.ATMOSPHERE_POSITIVE) * lf
    spread = np.nan_to_num(ff.fields["nee_spread"], nan=0.0) * to_mol * lf
    keys = _window_keys(tb[:, 0].astype(np.int64), tb[:, 1].astype(np.int64), reference, frequency)
    uniq, inv = np.unique(keys, return_inverse=True)
    w = tb[:, 1] - tb[:, 0]
    n_w = uniq.size
    flat = nee.reshape(nee.shape[0], -1)
    sflat = spread.reshape(spread.shape[0], -1)
    mean = np.zeros((n_w, flat.shape[1]))
    smean = np.zeros_like(mean)
    bounds = np.zeros((n_w, 2))
    for j in range(n_w):
        sel = inv == j
        ww = w[sel] / w[sel].sum()
        mean[j] = ww @ flat[sel]
        smean[j] = ww @ sflat[sel]
        bounds[j] = tb[sel, 0].min(), tb[sel, 1].max()
    if section.grid.kind is GridKind.HOST:
        info = HostGridInfo(grid.kind, grid.lat, grid.lon, grid.lat_bounds, grid.lon_bounds)
        out_mean, out_sd = mean, smean
        out_lf, out_area = lf, ff.area
    else:
        if grid.kind != "regular":
            raise InputError("prior.grid: a point-set run can only write its prior on the host points ('host')")
        from tamrl_coupler.regrid import Grid, Regridder

        src = Grid.regular(grid.lat, grid.lon, grid.lat_bounds, grid.lon_bounds, name="host")
        target = cfg.grid(section.grid) if cfg is not None else section.grid.text
        dst = Grid.resolve(target)
        rg = Regridder(src, dst, "conservative", normalization="destarea", unmapped="zero")
        out_mean = np.asarray(rg(mean))
        out_sd = np.asarray(rg(smean))
        if dst.kind != "regular":
            raise InputError(f"prior.grid {section.grid.text!r}: only regular lat-lon target grids are written")
        info = HostGridInfo("regular", dst.lat1d, dst.lon1d, dst.lat_bounds, dst.lon_bounds)
        out_lf, out_area = np.asarray(rg(np.asarray(lf, np.float64).ravel())), dst.area * EARTH_RADIUS**2
    path = Path(out_dir) / f"{section.prefix}_{frequency}.nc"
    flux_attrs = ff.attrs if "checkpoint" in ff.attrs else {**ff.attrs, **(provenance or {})}
    span = ff.reference + np.array([bounds.min(), bounds.max()]).astype(np.int64).astype("timedelta64[s]")
    lat = info.lat if info.lat_bounds is None else info.lat_bounds
    lon = info.lon if info.lon_bounds is None else info.lon_bounds
    attrs = prior_attributes(flux_attrs, str(flux_file), frequency, section.grid.text, span[0], span[1], lat, lon,
                             points=info.kind == "points",
                             extra={**budget_and_totals_attributes(flux_file), **(attributes or {})})
    return write_prior_file(path, info, bounds, tunits, out_mean, out_sd, frequency, Path(flux_file).name,
                            landfrac=out_lf, cell_area=out_area, attributes=attrs,
                            uncertainty_attributes=uncertainty_attributes(flux_attrs, frequency))


def budget_and_totals_attributes(flux_file: Path) -> dict[str, str]:
    """The run's budget mode (its flux file's ``budget_*`` attributes) and the global totals of GPP, Reco and NEE
    per month and year (physics/totals.py; the conservative remap to the prior grid keeps them)."""
    from tamrl_coupler.physics.totals import totals_attributes

    ff = read_flux_file(flux_file)
    attrs = {k: v for k, v in (ff.attrs or {}).items() if k.startswith("budget_")}
    attrs.setdefault("budget_mode", "as_trained")
    acc = flux_file_totals(ff)
    if acc is not None:
        attrs.update(totals_attributes(acc))
    return attrs


def prior_totals_lines(flux_file: Path) -> list[str]:
    """The global totals of the run a prior is made from, to print."""
    from tamrl_coupler.physics.totals import format_table

    acc = flux_file_totals(read_flux_file(flux_file))
    if acc is None:
        return []
    return format_table(acc.by("M"), "per month", bands=False) + format_table(acc.by("Y"), "per year")


def write_prior_and_map(flux_file: Path, section: PriorSection, out_dir: Path, cfg: RunConfig | None = None,
                        attributes: dict[str, Any] | None = None, provenance: dict[str, str] | None = None
                        ) -> list[Path]:
    """The prior file (:func:`write_prior`) and, on a lat-lon grid, a map of its NEE and uncertainty beside it."""
    from tamrl_coupler.products.maps import prior_map

    path = write_prior(flux_file, section, out_dir, cfg, attributes, provenance)
    with open_netcdf(path, "prior file") as ds:
        on_grid = ds["nee"].ndim == 3
    return [path, prior_map(path, path.with_name(path.stem + "_map.png"))] if on_grid else [path]
