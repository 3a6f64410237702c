"""A tower's sub-daily record as CF forcing in UTC, and sub-daily scores in the tower's local time."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest

from tamrl_coupler.errors import InputError
from tamrl_coupler.io.towerforcing import tower_series_to_cf_forcing, utc_offset_hours
from tamrl_coupler.products.towerscores import subdaily_scores


def _tower_file(path, time_base="local standard time (UTC+1)"):
    with netCDF4.Dataset(path, "w") as ds:
        ds.time_base, ds.site, ds.igbp = time_base, "XX-Twr", "ENF"
        ds.createDimension("time", 96)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "minutes since 2014-06-01 00:00:00"
        t[:] = np.arange(96) * 30.0
        for name, value in (("lat", 50.0), ("lon", 13.0)):
            ds.createVariable(name, "f8", ())[...] = value
        ta = ds.createVariable("ta", "f8", ("time",))
        ta.standard_name, ta.units = "air_temperature", "degC"
        ta[:] = np.arange(96.0)
        sw = ds.createVariable("sw", "f8", ("time",))
        sw.standard_name, sw.units = "surface_downwelling_shortwave_flux_in_air", "W m-2"
        sw[:] = np.full(96, 100.0)


def test_tower_series_moves_to_utc_in_import_units(tmp_path):
    _tower_file(tmp_path / "t.nc")
    out = tower_series_to_cf_forcing(tmp_path / "t.nc", tmp_path / "cf.nc")
    with netCDF4.Dataset(out) as ds:
        start = netCDF4.num2date(ds["time"][0], ds["time"].units, only_use_cftime_datetimes=False)
        assert str(start) == "2014-05-31 23:00:00"  # 00:00 local (UTC+1)
        assert np.allclose(ds["time_bnds"][0], [82800.0, 84600.0])
        assert np.allclose(ds["tas"][:, 0], np.arange(96.0) + 273.15)  # degC -> K, the import's unit
        assert np.all(ds["igbp"][:] == ds["igbp"][0, 0])
    assert utc_offset_hours("LST (UTC-5.5)", "x") == -5.5
    _tower_file(tmp_path / "u.nc", time_base="local time")
    with pytest.raises(InputError, match="does not say its UTC offset"):
        tower_series_to_cf_forcing(tmp_path / "u.nc", tmp_path / "cf2.nc")
    with netCDF4.Dataset(tower_series_to_cf_forcing(tmp_path / "u.nc", tmp_path / "cf3.nc", utc_offset=0.0)) as ds:
        start = netCDF4.num2date(ds["time"][0], ds["time"].units, only_use_cftime_datetimes=False)
        assert str(start) == "2014-06-01 00:00:00"  # the explicit offset, not a guess
    assert utc_offset_hours("IST (UTC+05:30)", "x") == 5.5 and utc_offset_hours("UTC-3:30", "x") == -3.5
    with pytest.raises(InputError, match=r"UTC offset nan h, expected hours within \+-14"):
        tower_series_to_cf_forcing(tmp_path / "u.nc", tmp_path / "cf4.nc", utc_offset=float("nan"))
    with netCDF4.Dataset(tmp_path / "u.nc", "a") as ds:
        ds["lat"][...] = np.nan
    with pytest.raises(InputError, match=r"u.nc: variable 'lat' is \[nan\], expected one number within \+-90"):
        tower_series_to_cf_forcing(tmp_path / "u.nc", tmp_path / "cf5.nc", utc_offset=0.0)


def test_subdaily_scores_diurnal_daily_and_level():
    step, days = 1800, 10
    t = np.datetime64("2014-06-01T00:00") + np.arange(days * 48) * np.timedelta64(step, "s")
    hour = np.arange(days * 48) % 48 / 2.0
    day = np.repeat(np.arange(days), 48)
    obs = np.maximum(0, np.sin(np.pi * (hour - 5) / 14)) * (10 + day)
    model = 0.5 * obs
    obs[5] = np.nan  # a missing observation leaves the step out of both
    s = subdaily_scores(t, model, obs, step)
    assert s.diurnal_r == pytest.approx(1.0) and s.daily_r == pytest.approx(1.0)
    assert s.mean_ratio == pytest.approx(0.5) and s.n_steps == days * 48 - 1 and s.n_days == days
    shifted = subdaily_scores(t, np.roll(model, 2), obs, step)  # an hour late
    assert shifted.diurnal_r < s.diurnal_r
