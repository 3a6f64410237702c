"""Builds tamrl_coupler/sample_data/demo_forcing.nc from the real GLDAS-2.1 snapshot in ../shared/data/gldas.

    python scripts/make_demo_forcing.py [--shared ../shared] [--out tamrl_coupler/sample_data/demo_forcing.nc]

What is real and what is made (also written into the file's global attributes):
* space: GLDAS-2.1 Noah 0.25 deg forcing of 2015-01-01 00Z, averaged over the valid 0.25 deg land cells of each
  5 x 5 deg host cell (60S-90N, GLDAS's domain); land fraction from the GLDAS land mask; exact lat-lon cell areas.
* time (3-hourly, 2015-01-01 to 2015-02-05): shortwave follows solar geometry, rsds = tau * TOA insolation, with
  the cell's transmissivity tau from the snapshot's 3-hour mean shortwave over the 3-hour mean TOA insolation of
  the same interval (zonal or global mean where the sun was down, clipped to [0.2, 0.85]); air temperature gets a
  diurnal cycle of +-5 K peaking at 15 h local solar time, anchored so that it equals the snapshot at 00Z;
  humidity, pressure and precipitation rate are held at the snapshot values.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import netCDF4
import numpy as np

from tamrl_coupler.physics.solar import mean_toa_insolation

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 20  # 0.25 deg cells per host cell side (5 deg)
START = np.datetime64("2015-01-01T00:00:00")
DAYS = 35
STEP = 10800
EARTH_RADIUS = 6371007.181  # m (ESMF's)
DTR_HALF = 5.0  # K


def _read(ds, name):
    v = ds.variables[name]
    v.set_auto_mask(False)
    a = np.asarray(v[0], dtype=np.float64)
    return np.where(a == -9999.0, np.nan, a)


def coarsen(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean over the valid fine cells of each BLOCK x BLOCK block (NaN when none)."""
    ny, nx = a.shape[0] // BLOCK, a.shape[1] // BLOCK
    s = np.where(valid, a, 0.0).reshape(ny, BLOCK, nx, BLOCK).sum(axis=(1, 3))
    n = valid.reshape(ny, BLOCK, nx, BLOCK).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / n, np.nan)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=os.environ.get("TAMRL_SHARED", str(ROOT.parent / "shared")))
    p.add_argument("--out", default=str(ROOT / "tamrl_coupler" / "sample_data" / "demo_forcing.nc"))
    args = p.parse_args()
    gdir = Path(args.shared) / "data" / "gldas"
    src = gdir / "GLDAS_NOAH025_3H.A20150101.0000.021.nc4"
    with netCDF4.Dataset(src) as ds:
        fine = {k: _read(ds, v) for k, v in (("tas", "Tair_f_inst"), ("huss", "Qair_f_inst"), ("ps", "Psurf_f_inst"),
                                              ("sw", "SWdown_f_tavg"), ("pr", "Rainf_f_tavg"))}
        flat = np.asarray(ds.variables["lat"][:], dtype=np.float64)
        flon = np.asarray(ds.variables["lon"][:], dtype=np.float64)
    with netCDF4.Dataset(gdir / "GLDASp4_landmask_025d.nc4") as ds:
        mask = _read(ds, "GLDAS_mask") > 0.5
    valid = mask & np.all([np.isfinite(v) for v in fine.values()], axis=0)
    ny, nx = flat.size // BLOCK, flon.size // BLOCK
    lat_b = np.stack([flat[::BLOCK] - 0.125, flat[BLOCK - 1::BLOCK] + 0.125], 1)
    lon_b = np.stack([flon[::BLOCK] - 0.125, flon[BLOCK - 1::BLOCK] + 0.125], 1)
    lat, lon = lat_b.mean(1), lon_b.mean(1)
    landfrac = valid.reshape(ny, BLOCK, nx, BLOCK).mean(axis=(1, 3))
    area = (EARTH_RADIUS ** 2 * np.deg2rad(lon_b[:, 1] - lon_b[:, 0])[None, :]
            * (np.sin(np.deg2rad(lat_b[:, 1])) - np.sin(np.deg2rad(lat_b[:, 0])))[:, None])
    coarse = {k: coarsen(v, valid) for k, v in fine.items()}
    land = landfrac > 0
    LA, LO = np.meshgrid(lat, lon, indexing="ij")

    # transmissivity from the snapshot's 3-hour mean shortwave (interval 2014-12-31 21Z .. 2015-01-01 00Z)
    toa_snap = mean_toa_insolation(LA, LO, START - np.timedelta64(STEP, "s"), STEP, samples=24)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(toa_snap > 50.0, coarse["sw"] / toa_snap, np.nan)
    zonal = np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in tau])
    zonal = np.where(np.isfinite(zonal), zonal, np.nanmean(tau))
    tau = np.clip(np.where(np.isfinite(tau), tau, zonal[:, None]), 0.2, 0.85)

    n_t = DAYS * 86400 // STEP
    times = START + np.arange(n_t) * np.timedelta64(STEP, "s")
    local_h0 = (LO / 15.0) % 24.0  # local solar hour at 00Z (equation of time ignored for the anchor)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fill = np.float32(1.0e20)
    with netCDF4.Dataset(out, "w", format="NETCDF4") as ds:
        ds.setncattr("Conventions", "CF-1.8")
        ds.setncattr("title", "tamrl-coupler demo forcing: 5 deg host grid, 3-hourly, 2015-01-01 to 2015-02-05")
        ds.setncattr("source", "GLDAS-2.1 Noah 0.25 deg 3-hourly forcing, 2015-01-01 00Z "
                               "(GLDAS_NOAH025_3H.A20150101.0000.021), and the GLDASp4 0.25 deg land mask")
        ds.setncattr("references", "Rodell, M., et al. (2004): The Global Land Data Assimilation System, BAMS 85(3), "
                                   "381-394, doi:10.1175/BAMS-85-3-381. Data: NASA GES DISC, "
                                   "doi:10.5067/E7TYRXPJKWOQ (free use with citation)")
        ds.setncattr("institution", "derived by tamrl-coupler developers from NASA GSFC GLDAS data")
        ds.setncattr("history", "scripts/make_demo_forcing.py: block means over valid 0.25 deg land cells")
        ds.setncattr("time_variation",
                     "Only one real GLDAS time step is used. rsds = tau * top-of-atmosphere insolation (solar "
                     "geometry, 3-hour means), tau per cell = snapshot 3-hour mean SWdown / TOA over the same "
                     "interval (zonal or global mean where the sun was down), clipped to [0.2, 0.85]. tas = snapshot "
                     "+ 5 K * [cos(2 pi (h - 15)/24) - cos(2 pi (h0 - 15)/24)], h = local solar hour, h0 = its value "
                     "at 2015-01-01 00Z. huss, ps and pr are the snapshot values, constant in time.")
        ds.createDimension("time", None)
        ds.createDimension("lat", ny)
        ds.createDimension("lon", nx)
        ds.createDimension("nv", 2)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.calendar, t.standard_name, t.axis, t.bounds = (
            "seconds since 2015-01-01 00:00:00", "proleptic_gregorian", "time", "T", "time_bnds")
        tb = ds.createVariable("time_bnds", "f8", ("time", "nv"))
        secs = (times - START).astype(np.int64).astype(np.float64)
        t[:] = secs
        tb[:] = np.stack([secs, secs + STEP], 1)
        for nm, vals, bnds, units, std, axis in (("lat", lat, lat_b, "degrees_north", "latitude", "Y"),
                                                 ("lon", lon, lon_b, "degrees_east", "longitude", "X")):
            v = ds.createVariable(nm, "f8", (nm,))
            v.units, v.standard_name, v.axis, v.bounds = units, std, axis, f"{nm}_bnds"
            v[:] = vals
            ds.createVariable(f"{nm}_bnds", "f8", (nm, "nv"))[:] = bnds
        lf = ds.createVariable("landfrac", "f8", ("lat", "lon"))
        lf.standard_name, lf.units = "land_area_fraction", "1"
        lf.long_name = "fraction of the cell covered by valid GLDAS land cells"
        lf[:] = landfrac
        ca = ds.createVariable("cell_area", "f8", ("lat", "lon"))
        ca.standard_name, ca.units = "cell_area", "m2"
        ca[:] = area
        specs = {"tas": ("K", "air_temperature", "near-surface air temperature", 2, "time: point"),
                 "huss": ("kg kg-1", "specific_humidity", "near-surface specific humidity", 6, "time: point"),
                 "ps": ("Pa", "surface_air_pressure", "surface air pressure", 0, "time: point"),
                 "rsds": ("W m-2", "surface_downwelling_shortwave_flux_in_air", "downwelling shortwave", 1,
                          "time: mean"),
                 "pr": ("kg m-2 s-1", "precipitation_flux", "precipitation rate", 9, "time: mean")}
        vars_ = {}
        for nm, (units, std, long, lsd, cm) in specs.items():
            v = ds.createVariable(nm, "f4", ("time", "lat", "lon"), zlib=True, complevel=9, shuffle=True,
                                  fill_value=fill, least_significant_digit=lsd, chunksizes=(8, ny, nx))
            v.units, v.standard_name, v.long_name, v.cell_methods = units, std, long, cm
            v.cell_measures = "area: cell_area"
            vars_[nm] = v
        anchor = np.cos(2 * np.pi * (local_h0 - 15.0) / 24.0)
        for i, t0 in enumerate(times):
            hours = (t0 - t0.astype("datetime64[D]")).astype(np.int64) / 3600.0 + 1.5  # step-mean hour (UTC)
            local_h = (hours + LO / 15.0) % 24.0
            tas = coarse["tas"] + DTR_HALF * (np.cos(2 * np.pi * (local_h - 15.0) / 24.0) - anchor)
            rsds = tau * mean_toa_insolation(LA, LO, t0, STEP, samples=12)
            for nm, val in (("tas", tas), ("huss", coarse["huss"]), ("ps", coarse["ps"]), ("rsds", rsds),
                            ("pr", coarse["pr"])):
                vars_[nm][i] = np.where(land, val, fill).astype(np.float32)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {ny}x{nx} cells, {int(land.sum())} with land, "
          f"{n_t} steps")


if __name__ == "__main__":
    main()
