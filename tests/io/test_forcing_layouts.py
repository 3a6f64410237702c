"""Forcing in the layouts users have, read from real public samples (tests/data/forcing/, README there) and from
files written here in those layouts out of the samples' real values; every number against a hand computation."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest

from tamrl_coupler.constants import ZERO_CELSIUS
from tamrl_coupler.errors import InputError
from tamrl_coupler.io.forcing import ForcingReader
from tamrl_coupler.io.gribfile import GribFile
from tamrl_coupler.physics.accumulation import deaccumulate
from tamrl_coupler.physics.drivers import DriverAccumulator, ImportDerivations
from tamrl_coupler.physics.humidity import vpd_from_dewpoint_hpa, vpd_from_relative_humidity_hpa

DATA = Path(__file__).resolve().parents[1] / "data" / "forcing"
ERA5_POINT = DATA / "era5_cds_hourly_point_2020-01.nc"  # packed int16, 'time', hourly, 10 days
ERA5_FIELD = DATA / "era5_cds_field_1995-07-14T12.nc"  # packed t2m, d2m, sp, one time
ERA5_GRIB = DATA / "era5_grib_t2m_2017-01-01T12.grib"
CMIP6_PRSN = DATA / "cmip6_prsn_day_CanESM5_historical_r1i1p1f1_gn_19910101-19921231.nc"
CMIP5_TAS = DATA / "cmip5_tas_Amon_CanESM2_rcp85_r1i1p1_200701-200712.nc"
HOUR = np.timedelta64(3600, "s")


def magnus_hpa(t_celsius):
    """Alduchov & Eskridge (1996) over water, written out."""
    return 6.1094 * np.exp(17.625 * t_celsius / (t_celsius + 243.04))


def unpacked(path, name):
    """A packed variable decoded by hand: int16 * scale_factor + add_offset (fill values -> NaN)."""
    with netCDF4.Dataset(path) as ds:
        v = ds[name]
        v.set_auto_maskandscale(False)
        raw = np.asarray(v[:], dtype=np.float64)
        return np.where(raw == v._FillValue, np.nan, raw * v.scale_factor + v.add_offset)


def point_series():
    """The real ERA5 hourly series of the sample: stamps, t2m [K], sp [Pa], msdwswrf [W m-2] (the mean over the
    hour ending at the stamp)."""
    with netCDF4.Dataset(ERA5_POINT) as ds:
        t = netCDF4.num2date(ds["time"][:], ds["time"].units, only_use_cftime_datetimes=False)
    stamps = np.array([np.datetime64(x.isoformat(), "s") for x in t])
    return stamps, unpacked(ERA5_POINT, "t2m")[:, 0, 0], unpacked(ERA5_POINT, "sp")[:, 0, 0], \
        unpacked(ERA5_POINT, "msdwswrf")[:, 0, 0]


# --- ERA5 as the CDS wrote it -------------------------------------------------------------------------------------
def test_era5_packed_netcdf_hourly_real_sample():
    stamps, t2m, sp, sw = point_series()
    r = ForcingReader([ERA5_POINT], {}, ["tas", "ps", "rsds", "uas", "vas"], layout="era5")
    # t2m and sp hold from their stamp; the mean rate msdwswrf is over the hour before its stamp: the common
    # records start one hour after the first stamp and end at the last stamp
    assert r.times[0] == stamps[0] and r.ends[-1] == stamps[-1] and r.times.size == stamps.size - 1
    k = 100
    np.testing.assert_array_equal(r.read("tas", k), [t2m[k]])  # packing decoded exactly
    np.testing.assert_array_equal(r.read("ps", k), [sp[k]])
    np.testing.assert_array_equal(r.read("rsds", k), [sw[k + 1]])  # the hour [t_k, t_k+1) is the stamp t_k+1
    assert r.read("uas", k)[0] == pytest.approx(unpacked(ERA5_POINT, "u10")[k, 0, 0])
    assert r.record_for(stamps[k] + np.timedelta64(1800, "s"), 1800) == k
    r.close()


def test_era5_vpd_from_dewpoint_real_field():
    t2m, d2m = unpacked(ERA5_FIELD, "t2m"), unpacked(ERA5_FIELD, "d2m")
    assert 280 < np.nanmean(t2m) < 320 and (d2m <= t2m + 1e-6).all()  # July, and the dew point below the air's
    expected = magnus_hpa(t2m - ZERO_CELSIUS) - magnus_hpa(d2m - ZERO_CELSIUS)  # hPa, by hand
    got = vpd_from_dewpoint_hpa(t2m.ravel(), d2m.ravel()).reshape(t2m.shape)
    np.testing.assert_allclose(got, np.maximum(expected, 0.0), rtol=1e-12)
    # the component derives vpd [Pa] from tas and tdps when that is what a host (or ERA5) gives
    fields = {"tas": t2m.ravel().copy(), "tdps": d2m.ravel().copy()}
    d = ImportDerivations(fields, t2m.size)
    d.derive()
    assert d.derived == ["vpd"]
    np.testing.assert_allclose(fields["vpd"], 100.0 * np.maximum(expected, 0.0).ravel(), rtol=1e-12)


def test_vpd_from_relative_humidity_by_hand():
    t = np.array([293.15, 303.15, 273.15])
    rh = np.array([50.0, 100.0, 104.0])
    es = magnus_hpa(t - ZERO_CELSIUS)
    np.testing.assert_allclose(vpd_from_relative_humidity_hpa(t, rh), [0.5 * es[0], 0.0, 0.0], atol=1e-12)


def _era5_accumulated(path, stamps, ssrd, tp, layout="old", pack=True):
    """An ERA5 file of ``ssrd`` [J m-2] and ``tp`` [m] (2 x 2 cells, the same series in each) the way the CDS
    writes them: ``old`` (int16 packing, 'time' in hours since 1900) or ``new`` (float32, 'valid_time' in seconds
    since 1970, 'number' and 'expver' coordinates, GRIB attributes)."""
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET" if layout == "old" else "NETCDF4") as ds:
        tname = "time" if layout == "old" else "valid_time"
        ds.createDimension(tname, stamps.size)
        ds.createDimension("latitude", 2)
        ds.createDimension("longitude", 2)
        t = ds.createVariable(tname, "i4" if layout == "old" else "i8", (tname,))
        if layout == "old":
            t.units, t.calendar = "hours since 1900-01-01 00:00:00.0", "gregorian"
            t[:] = ((stamps - np.datetime64("1900-01-01T00:00:00")) // HOUR).astype(np.int64)
        else:
            t.units, t.calendar, t.standard_name = "seconds since 1970-01-01", "proleptic_gregorian", "time"
            t[:] = stamps.astype("datetime64[s]").astype(np.int64)
            ds.createVariable("number", "i8")[...] = 0
            ds.createVariable("expver", str, (tname,))[:] = np.array(["0001"] * stamps.size, dtype=object)
        for name, vals in (("latitude", [56.0, 55.75]), ("longitude", [12.25, 12.5])):
            v = ds.createVariable(name, "f8", (name,))
            v.units = "degrees_north" if name == "latitude" else "degrees_east"
            v[:] = vals
        for name, vals, units in (("ssrd", ssrd, "J m**-2"), ("tp", tp, "m")):
            grid = np.broadcast_to(vals[:, None, None], (stamps.size, 2, 2))
            if pack:
                lo, hi = float(grid.min()), float(grid.max())
                scale = (hi - lo) / (2**16 - 2) or 1.0
                offset = lo + scale * 2**15
                v = ds.createVariable(name, "i2", (tname, "latitude", "longitude"), fill_value=np.int16(-32767))
                v.set_auto_maskandscale(False)
                v.scale_factor, v.add_offset, v.missing_value = scale, offset, np.int16(-32767)
                v[:] = np.round((grid - offset) / scale).astype(np.int16)
            else:
                v = ds.createVariable(name, "f4", (tname, "latitude", "longitude"), fill_value=np.float32(np.nan))
                v.GRIB_paramId, v.GRIB_stepType = (169 if name == "ssrd" else 228), "accum"
                v[:] = grid
            v.units = units
    return path


def _tp_series(stamps):
    """Known hourly precipitation [m per hour]: 0.5 mm in every third hour."""
    return np.where(np.arange(stamps.size) % 3 == 0, 0.5e-3, 0.0)


@pytest.mark.parametrize("layout,pack", [("old", True), ("new", False)])
def test_era5_accumulations_over_the_hour_become_rates(tmp_path, layout, pack):
    stamps, _, _, sw = point_series()
    tp = _tp_series(stamps)
    path = _era5_accumulated(tmp_path / f"era5_{layout}.nc", stamps, sw * 3600.0, tp, layout, pack)
    r = ForcingReader([path], {}, ["rsds", "pr"], layout="era5")
    assert r.times[0] == stamps[0] - HOUR and r.ends[-1] == stamps[-1]  # the hour before each stamp
    rsds = np.array([r.read("rsds", k)[0] for k in range(r.times.size)])
    pr = np.array([r.read("pr", k)[3] for k in range(r.times.size)])
    quantum = (sw.max() - sw.min()) * 3600 / (2**16 - 2) / 3600 if pack else 1e-3  # W m-2 per packing step
    np.testing.assert_allclose(rsds, sw, atol=quantum)  # J m-2 per hour / 3600 s = the mean rate, W m-2
    np.testing.assert_allclose(pr, tp * 1000.0 / 3600.0, atol=1e-9 if pack else 1e-12)  # m -> kg m-2 s-1
    assert pr.max() == pytest.approx(0.5 / 3600.0, rel=1e-4)


def test_era5_land_accumulates_from_00_utc(tmp_path):
    stamps, _, _, sw = point_series()
    stamps, sw = stamps[1:], sw[1:]  # from 01 UTC: every day's accumulation complete in the file
    tp = _tp_series(stamps)
    day_start = np.searchsorted(stamps.astype("datetime64[D]"), stamps.astype("datetime64[D]") - (
        (stamps.astype("datetime64[h]").astype(int) % 24) == 0).astype(int))
    cum_sw, cum_tp = np.zeros_like(sw), np.zeros_like(tp)
    for k in range(stamps.size):  # the amount since 00 UTC of the day the hour belongs to
        first = day_start[k]
        cum_sw[k], cum_tp[k] = sw[first:k + 1].sum() * 3600.0, tp[first:k + 1].sum()
    path = _era5_accumulated(tmp_path / "era5_land.nc", stamps, cum_sw, cum_tp, "new", pack=False)
    r = ForcingReader([path], {}, ["rsds", "pr"], layout="era5_land")
    rsds = np.array([r.read("rsds", k)[0] for k in range(r.times.size)])
    pr = np.array([r.read("pr", k)[0] for k in range(r.times.size)])
    np.testing.assert_allclose(rsds, sw, atol=0.02)  # float32 accumulations of up to ~1e7 J m-2
    np.testing.assert_allclose(pr, tp * 1000.0 / 3600.0, atol=1e-9)
    hourly = _era5_accumulated(tmp_path / "era5.nc", stamps, sw * 3600.0, tp, "new", pack=False)
    with pytest.raises(InputError, match="the amount decreases .* is it the layout of this file"):
        wrong = ForcingReader([hourly], {}, ["rsds"], layout="era5_land")  # ERA5 hourly amounts taken for ERA5-Land
        for k in range(wrong.times.size):
            wrong.read("rsds", k)
    # started at 02 UTC, the first hour cannot be de-accumulated
    late = _era5_accumulated(tmp_path / "late.nc", stamps[1:], cum_sw[1:], cum_tp[1:], "new", pack=False)
    r2 = ForcingReader([late], {}, ["rsds"], layout="era5_land")
    with pytest.raises(InputError, match="accumulated since 00 UTC and the record before it"):
        r2.read("rsds", 0)


def _grib_series(path, stamps, t2m, ssrd_hourly):
    """ERA5 in GRIB as MARS writes it: t2m analyses every hour; ssrd from forecasts started at 06 and 18 UTC,
    steps 1-12 h, each the amount over the hour ending at base + step. Messages cloned from the real sample."""
    import eccodes as ec

    with open(ERA5_GRIB, "rb") as fh:
        template = ec.codes_grib_new_from_file(fh)
    try:
        with open(path, "wb") as out:
            def write(param, when, step, values, accum):
                g = ec.codes_clone(template)
                for k, v in (("Ni", 2), ("Nj", 2), ("latitudeOfFirstGridPointInDegrees", 56.0),
                             ("latitudeOfLastGridPointInDegrees", 55.75), ("longitudeOfFirstGridPointInDegrees", 12.25),
                             ("longitudeOfLastGridPointInDegrees", 12.5), ("paramId", param)):
                    ec.codes_set(g, k, v)
                base = when - step * HOUR
                ec.codes_set(g, "dataDate", int(str(base.astype("datetime64[D]")).replace("-", "")))
                ec.codes_set(g, "dataTime", int(base.astype("datetime64[h]").astype(int) % 24) * 100)
                if accum:
                    ec.codes_set(g, "stepType", "accum")
                    ec.codes_set(g, "startStep", step - 1)
                    ec.codes_set(g, "endStep", step)
                ec.codes_set(g, "bitsPerValue", 24)
                ec.codes_set_values(g, np.full(4, values))
                ec.codes_write(g, out)
                ec.codes_release(g)

            for when, t, e in zip(stamps, t2m, ssrd_hourly, strict=True):
                write(167, when, 0, t, False)
                hour = int(when.astype("datetime64[h]").astype(int) % 24)
                step = (hour - 6) % 12 or 12  # forecasts from 06 and 18 UTC
                write(169, when, step, e, True)
    finally:
        ec.codes_release(template)
    return path


def test_era5_grib_real_message_and_accumulated_series(tmp_path):
    import eccodes as ec

    g = GribFile(ERA5_GRIB)  # the real ERA5 GRIB sample: one analysis of 2 m temperature
    v = g.variables["t2m"]
    assert v.units == "K" and str(v.valid[0]) == "2017-01-01T12:00:00" and v.dims == ("latitude", "longitude")
    with open(ERA5_GRIB, "rb") as fh:
        h = ec.codes_grib_new_from_file(fh)
        ref = ec.codes_get_values(h).reshape(ec.codes_get(h, "Nj"), ec.codes_get(h, "Ni"))
        ec.codes_release(h)
    np.testing.assert_allclose(v.read(0), ref, rtol=1e-6)
    g.close()
    stamps, t2m, _, sw = point_series()
    stamps, t2m, sw = stamps[7:79], t2m[7:79], sw[7:79]  # three days from 07 UTC
    path = _grib_series(tmp_path / "era5.grib", stamps, t2m, sw * 3600.0)
    r = ForcingReader([path], {}, ["tas", "rsds"], layout="era5")
    assert r.times[0] == stamps[0] and r.ends[-1] == stamps[-1]
    tas = np.array([r.read("tas", k)[0] for k in range(r.times.size)])
    rsds = np.array([r.read("rsds", k)[0] for k in range(r.times.size)])
    np.testing.assert_allclose(tas, t2m[:-1], atol=2e-3)  # 24-bit GRIB packing of the real values
    np.testing.assert_allclose(rsds, sw[1:], atol=2e-3)
    r.close()


# --- CMIP6 CMOR ---------------------------------------------------------------------------------------------------
def test_cmip6_daily_no_leap_calendar_real_sample():
    with pytest.raises(InputError, match="calendar '365_day' is not supported.*leap_day: hold"):
        ForcingReader([CMIP6_PRSN], {"pr": "prsn"}, ["pr"], layout="cmip6")
    r = ForcingReader([CMIP6_PRSN], {"pr": "prsn"}, ["pr"], layout="cmip6", leap_day="hold")
    # its time bounds are named but missing: daily means stamped at noon hold over their day (CMOR's centring)
    assert r.times[0] == np.datetime64("1991-01-01T00:00:00") and r.ends[-1] == np.datetime64("1993-01-01T00:00:00")
    k = r.record_for(np.datetime64("1992-02-29T12:00:00"), 3600)  # no such day in the file: Feb 28's is held
    assert r.times[k] == np.datetime64("1992-02-28") and r.ends[k] == np.datetime64("1992-03-01")
    with netCDF4.Dataset(CMIP6_PRSN) as ds:
        ref = np.asarray(ds["prsn"][365 + 58], dtype=np.float64).ravel()  # day 59 of 1992 in a 365-day year
    np.testing.assert_array_equal(r.read("pr", k), ref)  # kg m-2 s-1 in the file: no conversion
    assert "1992-02-29" in r.calendar_note() and "(1 day(s))" in r.calendar_note()
    assert r.calendar_note(np.datetime64("1991-03-01"), np.datetime64("1991-04-01")).endswith("no Feb 29 in the run")


def test_cmip_monthly_means_with_bounds_real_sample():
    r = ForcingReader([CMIP5_TAS], {}, ["tas"], layout="cmip6", leap_day="hold")
    # the file's bounds: CanESM2's "2007" runs from December 2006 to November 2007
    assert r.times.size == 12 and str(r.times[0]) == "2006-12-01T00:00:00" and str(r.ends[-1]) == "2007-12-01T00:00:00"
    with netCDF4.Dataset(CMIP5_TAS) as ds:
        np.testing.assert_array_equal(r.read("tas", 6), np.asarray(ds["tas"][6], np.float64).ravel())


def _cmor(path, var, units, stamps, values, bounds=None, calendar="proleptic_gregorian", extra=None):
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("bnds", 2)
        ds.createDimension("lat", 2)
        ds.createDimension("lon", 3)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.calendar = "hours since 2001-01-01 00:00:00", calendar
        t[:] = stamps
        if bounds is not None:
            t.bounds = "time_bnds"
            ds.createVariable("time_bnds", "f8", ("time", "bnds"))[:] = bounds
        ds.createVariable("lat", "f8", ("lat",))[:] = [10.0, 20.0]
        ds.createVariable("lon", "f8", ("lon",))[:] = [0.0, 10.0, 20.0]
        v = ds.createVariable(var, "f4", ("time", "lat", "lon"), fill_value=np.float32(1e20))
        v.units = units
        v.setncatts(extra or {})
        v[:] = values
    return path


def test_cmip6_one_variable_per_file_on_their_own_time_axes(tmp_path):
    """3-hourly point temperature and humidity, 3-hourly mean precipitation stamped mid-interval with bounds, daily
    maximum temperature: each held over its own records."""
    n = 16  # two days of 3-hour records
    point = np.arange(n) * 3.0
    shape = (n, 2, 3)
    tas = 290.0 + np.arange(n)[:, None, None] * np.ones(shape)
    files = [_cmor(tmp_path / "tas_3hr.nc", "tas", "K", point, tas),
             _cmor(tmp_path / "hurs_3hr.nc", "hurs", "%", point, np.full(shape, 40.0)),
             _cmor(tmp_path / "ps_3hr.nc", "ps", "Pa", point, np.full(shape, 1.0e5)),
             _cmor(tmp_path / "rsds_3hr.nc", "rsds", "W m-2", point + 1.5, np.full(shape, 200.0),
                   np.stack([point, point + 3], axis=1)),
             _cmor(tmp_path / "pr_3hr.nc", "pr", "kg m-2 s-1", point + 1.5,
                   np.arange(n)[:, None, None] * np.full(shape, 1e-5), np.stack([point, point + 3], axis=1)),
             _cmor(tmp_path / "tasmax_day.nc", "tasmax", "K", [12.0, 36.0], np.full((2, 2, 3), 300.0),
                   np.array([[0.0, 24.0], [24.0, 48.0]]))]
    r = ForcingReader(files, {}, None, layout="cmip6")
    assert set(r.fields) == {"tas", "hurs", "ps", "rsds", "pr", "tasmax"}
    assert r.times.size == n and str(r.ends[-1]) == "2001-01-03T00:00:00"
    k = r.record_for(np.datetime64("2001-01-01T07:00"), 3600)
    assert k == 2 and r.read("tas", k)[0] == 292.0 and r.read("pr", k)[0] == pytest.approx(2e-5)
    assert r.read("tasmax", 9)[0] == 300.0  # the second day's maximum, held over its 8 records


# --- CRU-JRA ------------------------------------------------------------------------------------------------------
def test_crujra_six_hourly_totals_and_units(tmp_path):
    """CRU-JRA names and units (Degrees Kelvin, mm/6h, J/m2 per 6 h), a no-leap calendar, one file per variable."""
    days = np.arange(365 + 58, 365 + 60)  # 2002-02-28 .. 2002-03-01 in days since 2001-01-01 (365-day years)
    stamps = (days[:, None] + np.arange(4)[None, :] / 4).ravel() * 24.0  # hours
    n, shape = stamps.size, (stamps.size, 2, 3)

    def f(name, units, values):
        return _cmor(tmp_path / f"crujra.v2.4.5d.{name}.2002.365d.noc.nc", name, units, stamps, values,
                     calendar="365_day")

    files = [f("tmp", "Degrees Kelvin", np.full(shape, 275.0)), f("pre", "mm/6h", np.full(shape, 6.0)),
             f("dswrf", "J/m2", np.full(shape, 500.0 * 21600)), f("spfh", "kg/kg", np.full(shape, 0.004)),
             f("pres", "Pa", np.full(shape, 9.9e4)), f("ugrd", "m/s", np.full(shape, 3.0)),
             f("vgrd", "m/s", np.full(shape, 4.0))]
    r = ForcingReader(files, {}, None, layout="crujra", leap_day="hold")
    assert set(r.fields) == {"tas", "pr", "rsds", "huss", "ps", "uas", "vas"}
    assert r.times.size == n  # 2002 has no Feb 29: nothing held
    assert r.read("pr", 0)[0] == pytest.approx(6.0 / 21600.0, rel=1e-12)  # 6 mm in 6 h = kg m-2 s-1
    assert r.read("rsds", 0)[0] == pytest.approx(500.0, rel=1e-12)  # the 6-hour total over 21600 s
    assert r.read("tas", 0)[0] == 275.0
    # in a leap year the last record of Feb 28 is held over Feb 29, and its total still spread over 6 h only
    leap = (days[:, None] + 2 * 365 + np.arange(4)[None, :] / 4).ravel() * 24.0  # 2004
    p = _cmor(tmp_path / "pre2004.nc", "pre", "mm/6h", leap, np.full(shape, 6.0), calendar="365_day")
    r4 = ForcingReader([p], {}, ["pr"], layout="crujra", leap_day="hold")
    k = r4.record_for(np.datetime64("2004-02-29T12:00"), 3600)
    assert r4.times[k] == np.datetime64("2004-02-28T18:00") and r4.ends[k] == np.datetime64("2004-03-01T00:00")
    assert r4.read("pr", k)[0] == pytest.approx(6.0 / 21600.0, rel=1e-12)
    assert "2004-02-29" in r4.calendar_note()


# --- physics of accumulation and extremes -------------------------------------------------------------------------
def test_deaccumulation_by_hand():
    np.testing.assert_allclose(deaccumulate(np.array([7200.0]), np.array([3600.0]), 3600.0), [1.0])
    np.testing.assert_allclose(deaccumulate(np.array([7200.0]), None, 3600.0), [2.0])


def test_daily_extremes_of_six_hourly_crujra_extremes(tmp_path):
    """The monthly model's tmin/tmax drivers from CRU-JRA's 6-hourly tmin/tmax (the extremes of each 6 hours): the
    mean over days of each day's lowest (highest) 6-hourly value, by hand."""
    stamps = np.arange(8) * 6.0  # two days, hours since 2001-01-01 (365-day calendar)
    rng = np.random.default_rng(4)
    lo = (270.0 + rng.uniform(0, 10, (8, 2, 3))).astype(np.float32).astype(np.float64)  # as the file holds them
    hi = (lo + rng.uniform(1, 8, (8, 2, 3))).astype(np.float32).astype(np.float64)
    files = [_cmor(tmp_path / "tmin.nc", "tmin", "Degrees Kelvin", stamps, lo, calendar="365_day"),
             _cmor(tmp_path / "tmax.nc", "tmax", "Degrees Kelvin", stamps, hi, calendar="365_day")]
    r = ForcingReader(files, {}, ["tasmin", "tasmax"], layout="crujra", leap_day="hold")
    acc = DriverAccumulator(6, ["tmin", "tmax"], {"tasmin", "tasmax"})
    for k in range(r.times.size):
        acc.add({"tasmin": r.read("tasmin", k), "tasmax": r.read("tasmax", k)}, 21600.0, ends_day=k % 4 == 3)
    out = acc.fill(np.zeros((6, 2)))
    want_min = (lo[:4].min(axis=0) + lo[4:].min(axis=0)).ravel() / 2 - ZERO_CELSIUS
    want_max = (hi[:4].max(axis=0) + hi[4:].max(axis=0)).ravel() / 2 - ZERO_CELSIUS
    np.testing.assert_allclose(out[:, 0], want_min, rtol=1e-12)
    np.testing.assert_allclose(out[:, 1], want_max, rtol=1e-12)


def test_unknown_layout_and_amounts_without_intervals(tmp_path):
    from tamrl_coupler.errors import ConfigError

    with pytest.raises(ConfigError, match="forcing.layout: 'era6' is not known"):
        ForcingReader([ERA5_POINT], {}, ["tas"], layout="era6")
    p = _cmor(tmp_path / "amount.nc", "rsds", "J m-2", np.arange(4) * 3.0, np.ones((4, 2, 3)))
    with pytest.raises(InputError, match="are an amount .* set forcing.layout"):
        ForcingReader([p], {}, ["rsds"])


def test_era5_monthly_files_and_a_one_hour_file_join(tmp_path):
    """ERA5 downloaded by month, plus the first hour of the next month (the last hour's amounts are stamped there):
    one field across files, states and amounts on their own intervals."""
    stamps, t2m, sp, sw = point_series()
    tp = _tp_series(stamps)
    a = _era5_accumulated(tmp_path / "a.nc", stamps[:120], sw[:120] * 3600.0, tp[:120], "new", pack=False)
    b = _era5_accumulated(tmp_path / "b.nc", stamps[120:121], sw[120:121] * 3600.0, tp[120:121], "new", pack=False)
    r = ForcingReader([b, a], {}, ["rsds", "pr"], layout="era5")  # any order: joined by time
    assert r.times[0] == stamps[0] - HOUR and r.ends[-1] == stamps[120]
    assert r.read("rsds", r.times.size - 1)[0] == pytest.approx(sw[120], abs=1e-3)


def test_a_standard_name_never_takes_another_imports_variable(tmp_path):
    """A daily maximum is air_temperature too: it is not read as the mean temperature."""
    p = _cmor(tmp_path / "tasmax.nc", "tasmax", "K", np.arange(4) * 24.0, np.full((4, 2, 3), 300.0),
              extra={"standard_name": "air_temperature"})
    with pytest.raises(InputError, match="variable 'tas' or one with standard_name 'air_temperature' is missing"):
        ForcingReader([p], {}, ["tas"])
    assert ForcingReader([p], {}, ["tasmax"]).read("tasmax", 0)[0] == 300.0
