"""Inversion priors: NEE and its uncertainty on a target grid, 3-hourly/daily/monthly means, mol CO2 m-2 s-1,
positive to the atmosphere (what CarbonTracker, CAMS and OCO-2 MIP systems read).

The coupled run's NEE is per m2 of *land*; an inversion wants flux per m2 of *grid cell*, so NEE is multiplied by
the host land fraction before the conservative remap to the target grid (area-weighted, destination-area
normalised), which keeps the global total. The uncertainty is the ensemble spread treated the same way; its time
mean is the mean of the spreads (errors taken as fully correlated within an averaging window: an upper bound).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tamrl_coupler.errors import InputError
from tamrl_coupler.io.cfcoords import write_horizontal_coords
from tamrl_coupler.io.output import HostGridInfo
from tamrl_coupler.io.restart import write_atomic_netcdf
from tamrl_coupler.physics.carbon import SignConvention, convert_nee
from tamrl_coupler.physics.units import flux_unit

FREQUENCIES = {"3hourly": 10800, "daily": 86400, "monthly": None}


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


def write_prior(flux_file: Path, section, out_dir: Path, cfg=None) -> Path:
    """Aggregate and remap a flux file into a prior file ``{prefix}_{frequency}.nc`` in ``out_dir``."""
    import netCDF4

    frequency = section.frequency
    if frequency not in FREQUENCIES:
        raise InputError(f"prior.frequency: {frequency!r}; expected one of {sorted(FREQUENCIES)}")
    with netCDF4.Dataset(flux_file) as ds:
        unit = flux_unit(ds.getncattr("flux_unit"))
        conv = SignConvention.parse(ds.getncattr("sign_convention"))
        tb = np.asarray(ds["time_bnds"][:], dtype=np.float64)
        tunits = ds["time"].units
        reference = np.datetime64(tunits.replace("seconds since ", "").strip().replace(" ", "T"), "s")
        nee = np.ma.filled(ds["nee"][:].astype(np.float64), 0.0)
        spread = np.ma.filled(ds["nee_spread"][:].astype(np.float64), 0.0)
        lf = np.asarray(ds["landfrac"][:], dtype=np.float64)
        regular = "lat" in ds.dimensions
        lat, lon = np.asarray(ds["lat"][:]), np.asarray(ds["lon"][:])
        lat_b = np.asarray(ds["lat_bnds"][:]) if "lat_bnds" in ds.variables else None
        lon_b = np.asarray(ds["lon_bnds"][:]) if "lon_bnds" in ds.variables else None
    if tb.shape[0] == 0:
        raise InputError(f"{flux_file}: no time records to make a prior from")
    to_mol = flux_unit("molCO2 m-2 s-1").factor / unit.factor
    nee = convert_nee(nee * to_mol, conv, SignConvention.ATMOSPHERE_POSITIVE) * lf
    spread = spread * to_mol * lf
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
    if section.grid == "host":
        info = HostGridInfo("regular", lat, lon, lat_b, lon_b) if regular else HostGridInfo("points", lat, lon)
        out_mean, out_sd = mean, smean
    else:
        if not regular:
            raise InputError("prior.grid: a point-set run can only write its prior on the host points ('host')")
        from tamrl_coupler.regrid import Grid, Regridder

        src = Grid.regular(lat, lon, lat_b, lon_b, name="host")
        spec = section.grid
        if cfg is not None and (spec.endswith(".nc") or "/" in spec):
            spec = str(cfg.path(spec))
        dst = Grid.resolve(spec)
        rg = Regridder(src, dst, "conservative", normalization="destarea", unmapped="zero")
        out_mean = np.asarray(rg(mean))
        out_sd = np.asarray(rg(smean))
        if dst.kind != "regular":
            raise InputError(f"prior.grid {section.grid!r}: only regular lat-lon target grids are written")
        info = HostGridInfo("regular", dst.lat1d, dst.lon1d, dst.lat_bounds, dst.lon_bounds)
    path = Path(out_dir) / f"{section.prefix}_{frequency}.nc"

    def fill(ds):
        ds.setncattr("Conventions", "CF-1.8")
        ds.setncattr("title", f"TAM-RL NEE prior ({frequency} means) for atmospheric inversions")
        ds.setncattr("source", f"tamrl-coupler, from {Path(flux_file).name}")
        ds.setncattr("sign_convention", "atmosphere_positive")
        ds.setncattr("nee_definition", "NEE = Reco - GPP, positive to the atmosphere, per m2 of grid cell "
                                       "(land flux times land fraction)")
        ds.setncattr("uncertainty_definition", "ensemble spread (member standard deviation), time mean of the "
                                               "spreads within each window")
        ds.createDimension("time", n_w)
        ds.createDimension("nv", 2)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.calendar, t.standard_name, t.axis, t.bounds = (tunits, "proleptic_gregorian", "time", "T",
                                                                  "time_bnds")
        t[:] = bounds.mean(axis=1)
        ds.createVariable("time_bnds", "f8", ("time", "nv"))[:] = bounds
        space, coords = write_horizontal_coords(ds, info.kind, info.lat, info.lon, info.lat_bounds,
                                                info.lon_bounds)
        shape = (n_w, *info.shape)
        for name, data, std, long in (
                ("nee", out_mean, "surface_upward_mole_flux_of_carbon_dioxide",
                 "net ecosystem exchange prior (Reco - GPP), per m2 of grid cell"),
                ("nee_uncertainty", out_sd, "surface_upward_mole_flux_of_carbon_dioxide standard_error",
                 "1-sigma uncertainty of the NEE prior (TAM-RL ensemble spread)")):
            v = ds.createVariable(name, "f8", ("time", *space), zlib=True, complevel=1)
            v.units = "mol m-2 s-1"
            v.standard_name = std
            v.long_name = long
            if name == "nee":
                v.positive = "up"
            v.cell_methods = "time: mean area: mean"
            if coords:
                v.coordinates = coords
            v[:] = np.asarray(data).reshape(shape)

    return write_atomic_netcdf(path, fill)
