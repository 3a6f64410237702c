"""A run driven by ERA5 as the CDS delivers it, end to end: the newer ``valid_time`` NetCDF layout, latitudes from
north to south, accumulated shortwave and precipitation, the dew point instead of humidity, the land-sea mask file
as the host grid; then the prior made from it passes the CF checker and names its checkpoint."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import yaml

from tamrl_coupler.host.offline import run_offline
from tamrl_coupler.io.cfcheck import cfchecks
from tamrl_coupler.products.prior import write_prior
from tamrl_coupler.settings.run import PriorSection

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "forcing" / "era5_cds_hourly_point_2020-01.nc"
LAT, LON = np.array([56.5, 55.5, 54.5]), np.array([10.0, 11.0, 12.0, 13.0])  # north to south, as ERA5


def _decode(ds, name):
    v = ds[name]
    v.set_auto_maskandscale(False)
    return np.asarray(v[:, 0, 0], dtype=np.float64) * v.scale_factor + v.add_offset


def era5_files(tmp_path: Path) -> tuple[Path, Path]:
    """Two days of the real hourly sample spread over a 3 x 4 grid (each column a little warmer), with ssrd
    accumulated over each hour (the sample's mean rate x 3600 s), tp (0.2 mm every other hour) and a dew point 4 K
    below the air (the sample has none); and the land-sea mask file ERA5 users download beside it."""
    with netCDF4.Dataset(SAMPLE) as ds:
        t = netCDF4.num2date(ds["time"][:], ds["time"].units, only_use_cftime_datetimes=False)
        t2m, sp, sw = _decode(ds, "t2m"), _decode(ds, "sp"), _decode(ds, "msdwswrf")
    stamps = np.array([np.datetime64(x.isoformat(), "s") for x in t])[:49]
    n = stamps.size
    warm = np.arange(LON.size)[None, None, :] * 0.5
    fields = {"t2m": ("K", t2m[:n, None, None] + warm), "d2m": ("K", t2m[:n, None, None] + warm - 4.0),
              "sp": ("Pa", sp[:n, None, None] + 0 * warm), "ssrd": ("J m**-2", sw[:n, None, None] * 3600.0 + 0 * warm),
              "tp": ("m", np.where(np.arange(n) % 2 == 0, 2e-4, 0.0)[:, None, None] + 0 * warm)}
    forcing = tmp_path / "era5_2020-01.nc"
    with netCDF4.Dataset(forcing, "w") as ds:
        ds.createDimension("valid_time", n)
        ds.createDimension("latitude", LAT.size)
        ds.createDimension("longitude", LON.size)
        v = ds.createVariable("valid_time", "i8", ("valid_time",))
        v.units, v.calendar, v.standard_name = "seconds since 1970-01-01", "proleptic_gregorian", "time"
        v[:] = stamps.astype(np.int64)
        for name, vals, units in (("latitude", LAT, "degrees_north"), ("longitude", LON, "degrees_east")):
            c = ds.createVariable(name, "f8", (name,))
            c.units = units
            c[:] = vals
        for name, (units, vals) in fields.items():
            f = ds.createVariable(name, "f4", ("valid_time", "latitude", "longitude"), fill_value=np.float32(np.nan))
            f.units = units
            f[:] = np.broadcast_to(vals, (n, LAT.size, LON.size))
    lsm = tmp_path / "era5_land_sea_mask.nc"
    with netCDF4.Dataset(lsm, "w") as ds:
        ds.createDimension("valid_time", 1)
        ds.createDimension("latitude", LAT.size)
        ds.createDimension("longitude", LON.size)
        for name, vals, units in (("latitude", LAT, "degrees_north"), ("longitude", LON, "degrees_east")):
            c = ds.createVariable(name, "f8", (name,))
            c.units = units
            c[:] = vals
        m = ds.createVariable("lsm", "f4", ("valid_time", "latitude", "longitude"))
        m.units, m.long_name = "(0 - 1)", "Land-sea mask"
        m[:] = np.array([[1.0, 1.0, 0.5, 0.0], [1.0, 0.8, 0.0, 0.0], [1.0, 1.0, 1.0, 0.2]])[None]
    return forcing, lsm


def test_daily_model_on_era5_as_the_cds_delivers_it(tmp_path):
    forcing, lsm = era5_files(tmp_path)
    cfg = {"reference_date": "2020-01-01", "start": "2020-01-01T00:00:00", "end": "2020-01-03T00:00:00",
           "coupling_step": 3600,
           "host": {"grid": str(lsm), "landfrac_variable": "lsm"},
           "forcing": {"files": [str(forcing)], "layout": "era5"},
           "model": {"checkpoint": "daily", "grid": "host"},
           "exports": {"unit": "gC m-2 d-1", "sign_convention": "uptake_positive"},
           "regrid": {"cache_dir": str(tmp_path / "weights")},
           "output": {"prefix": "era5"}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = run_offline(path, tmp_path / "out", progress=False)
    assert result.n_steps == 48
    with netCDF4.Dataset(result.flux_file) as ds:
        gpp, reco, nee = (np.ma.filled(ds[f][:], np.nan) for f in ("gpp", "reco", "nee"))
        land = ds["landfrac"][:] > 0
        assert np.isfinite(nee[:, land]).all() and np.isnan(nee[:, ~land]).all()
        np.testing.assert_array_equal(nee, gpp - reco)  # the identity, exactly
        assert ds.checkpoint == "tamrl_daily.npz"
        assert 0.0 < float(np.nanmean(gpp)) < 5.0  # January in Denmark, gC m-2 d-1
    prior = write_prior(result.flux_file, PriorSection(grid="host", frequency="daily"), tmp_path / "out")
    assert "ERRORS detected: 0" in cfchecks(prior)
    with netCDF4.Dataset(prior) as ds:
        assert ds["nee"].shape == (2, LAT.size, LON.size)
        assert ds["landfrac"][0, 3] == pytest.approx(0.0) and ds.checkpoint == "tamrl_daily.npz"


def test_cmip6_no_leap_days_held_over_feb_29_and_stated(tmp_path):
    """Daily CMIP6 files in a 365-day calendar, the daily model stepping a day at a time across 2004-02-29: the run
    holds Feb 28's records over it and the flux file says so."""
    days = np.arange(3 * 365 + 57, 3 * 365 + 61) + 0.5  # 2004-02-27 .. 03-01 at noon, days since 2001-01-01
    bounds = np.stack([days - 0.5, days + 0.5], axis=1)
    lat, lon = np.array([45.0, 46.0]), np.array([5.0, 6.0, 7.0])

    def cmor(var, units, value):
        path = tmp_path / f"{var}_day_model_ssp_r1i1p1f1_gn_20040227-20040301.nc"
        with netCDF4.Dataset(path, "w") as ds:
            ds.createDimension("time", None)
            ds.createDimension("bnds", 2)
            ds.createDimension("lat", 2)
            ds.createDimension("lon", 3)
            t = ds.createVariable("time", "f8", ("time",))
            t.units, t.calendar, t.bounds = "days since 2001-01-01", "365_day", "time_bnds"
            t[:] = days
            ds.createVariable("time_bnds", "f8", ("time", "bnds"))[:] = bounds
            for name, vals in (("lat", lat), ("lon", lon)):
                ds.createVariable(name, "f8", (name,))[:] = vals
            v = ds.createVariable(var, "f4", ("time", "lat", "lon"))
            v.units, v.cell_methods = units, "area: time: mean"
            v[:] = np.full((days.size, 2, 3), value)
            if var == "tas":
                ds.createVariable("landfrac", "f8", ("lat", "lon"))[:] = np.ones((2, 3))
                ds["landfrac"].units = "1"
        return path

    files = [cmor("tas", "K", 280.0), cmor("hurs", "%", 70.0), cmor("rsds", "W m-2", 120.0),
             cmor("pr", "kg m-2 s-1", 2e-5)]
    cfg = {"reference_date": "2004-01-01", "start": "2004-02-27T00:00:00", "end": "2004-03-02T00:00:00",
           "coupling_step": 86400, "host": {"grid": str(files[0])},
           "forcing": {"files": [str(f) for f in files], "layout": "cmip6", "leap_day": "hold"},
           "model": {"checkpoint": "daily", "grid": "host"}, "regrid": {"cache_dir": str(tmp_path / "w")}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = run_offline(path, tmp_path / "out", progress=False)
    assert result.n_steps == 4  # Feb 27, 28, 29 (held), Mar 1
    with netCDF4.Dataset(result.flux_file) as ds:
        assert "2004-02-29" in ds.forcing_calendar and "365_day" in ds.forcing_calendar
        assert np.isfinite(ds["nee"][:]).all()
    cfg["forcing"]["leap_day"] = "error"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(Exception, match="calendar '365_day' is not supported.*leap_day: hold"):
        run_offline(path, tmp_path / "out2", progress=False)


def test_the_era5_recipe_config_is_valid():
    from tamrl_coupler.settings.run import load_run_config

    cfg = load_run_config(Path(__file__).resolve().parents[2] / "configs" / "run" / "prior_era5.yaml")
    assert cfg.forcing.layout == "era5" and cfg.host.landfrac_variable == "lsm" and cfg.coupling_step == 3600
    assert cfg.output.prior.frequency == "daily"
