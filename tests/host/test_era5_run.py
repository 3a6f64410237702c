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
