"""The host grid's and the forcing's metadata are checked, never trusted: areas against the grid's geometry, land
fraction units, dimensions matched by name, NaN and fill values named as what they are, gaps and foreign calendars
refused, damaged files reported as such."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest

from tamrl_coupler.constants import EARTH_RADIUS
from tamrl_coupler.errors import InputError
from tamrl_coupler.io.forcing import ForcingReader
from tamrl_coupler.io.hostgrid import read_host_grid
from tamrl_coupler.regrid.grid import latlon_cell_areas

LAT = np.array([-15.0, -5.0, 5.0, 15.0])
LON = np.array([0.0, 10.0, 20.0])
FIELDS = ["tas", "huss", "ps", "rsds", "pr"]
VALUES = {"tas": 290.0, "huss": 0.008, "ps": 1.0e5, "rsds": 300.0, "pr": 2.0e-5}


def small_file(path: Path, *, area_units: str | None = "m2", area_scale: float = 1.0, lf_units: str = "1",
               lf_scale: float = 1.0, lf_nan: bool = False, lf_fill: bool = False, order: str = "lat_lon",
               times: list[float] | None = None, bounds: bool = True, calendar: str = "proleptic_gregorian") -> Path:
    """A 4 x 3 regular grid with land fraction, cell areas and 3-hourly forcing (the options spoil one thing)."""
    times = list(np.arange(8) * 10800.0) if times is None else times
    lat_b = np.stack([LAT - 5, LAT + 5], 1)
    lon_b = np.stack([LON - 5, LON + 5], 1)
    area = (latlon_cell_areas(lat_b, lon_b) * EARTH_RADIUS ** 2 * area_scale).reshape(LAT.size, LON.size)
    lf = np.linspace(0.2, 1.0, LAT.size * LON.size).reshape(LAT.size, LON.size) * lf_scale
    dims = ("lat", "lon") if order == "lat_lon" else ("lon", "lat")
    tr = (lambda a: a) if order == "lat_lon" else (lambda a: np.swapaxes(a, -1, -2))
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("lat", LAT.size)
        ds.createDimension("lon", LON.size)
        ds.createDimension("nv", 2)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.calendar = "seconds since 2015-01-01 00:00:00", calendar
        t[:] = times
        if bounds:
            t.bounds = "time_bnds"
            ds.createVariable("time_bnds", "f8", ("time", "nv"))[:] = np.stack([times, np.add(times, 10800.0)], 1)
        for name, c, b in (("lat", LAT, lat_b), ("lon", LON, lon_b)):
            v = ds.createVariable(name, "f8", (name,))
            v[:] = c
            v.bounds = f"{name}_bnds"
            ds.createVariable(f"{name}_bnds", "f8", (name, "nv"))[:] = b
        v = ds.createVariable("landfrac", "f8", dims, fill_value=1.0e20)
        v.units = lf_units
        data = lf.copy()
        if lf_nan:
            data[2, 1] = np.nan
        v[:] = tr(np.ma.masked_where(np.zeros_like(data, bool) | lf_fill & (np.arange(data.size).reshape(
            data.shape) == 5), data))
        a = ds.createVariable("cell_area", "f8", dims)
        if area_units is not None:
            a.units = area_units
        a[:] = tr(area)
        for f in FIELDS:
            v = ds.createVariable(f, "f4", ("time", *dims), fill_value=np.float32(1e20))
            v.units = {"tas": "K", "huss": "kg kg-1", "ps": "Pa", "rsds": "W m-2", "pr": "kg m-2 s-1"}[f]
            field = VALUES[f] + np.arange(LAT.size * LON.size).reshape(LAT.size, LON.size) * 1e-3 * VALUES[f]
            v[:] = tr(np.broadcast_to(field, (len(times), *field.shape)))
    return path


def test_a_sound_file_reads_in_order(tmp_path):
    g = read_host_grid(small_file(tmp_path / "ok.nc"))
    assert g.dims == ("lat", "lon") and g.size == 12
    np.testing.assert_allclose(g.landfrac, np.linspace(0.2, 1.0, 12))


def test_cell_areas_in_km2_are_converted_or_refused(tmp_path):
    ref = read_host_grid(small_file(tmp_path / "m2.nc")).area
    km2 = read_host_grid(small_file(tmp_path / "km2.nc", area_units="km2", area_scale=1e-6)).area
    np.testing.assert_allclose(km2, ref, rtol=1e-12)
    with pytest.raises(InputError, match=r"cell area .* differs from the grid's geometry, .* by a factor 1e-06"):
        read_host_grid(small_file(tmp_path / "km2_as_m2.nc", area_units=None, area_scale=1e-6))
    with pytest.raises(InputError, match="by a factor 1.05"):  # another grid's areas
        read_host_grid(small_file(tmp_path / "off.nc", area_scale=1.05))
    with pytest.raises(InputError, match="cell area units 'acres' not understood"):
        read_host_grid(small_file(tmp_path / "acres.nc", area_units="acres"))


def test_land_fraction_units_nan_and_fill_values(tmp_path):
    ref = read_host_grid(small_file(tmp_path / "frac.nc")).landfrac
    pct = read_host_grid(small_file(tmp_path / "pct.nc", lf_units="%", lf_scale=100.0)).landfrac
    np.testing.assert_allclose(pct, ref, rtol=1e-14)
    with pytest.raises(InputError, match="land fraction 20 outside \\[0, 1\\].*look like percent"):
        read_host_grid(small_file(tmp_path / "pct_as_1.nc", lf_scale=100.0))
    with pytest.raises(InputError, match="land fraction is missing .* first cell 7 at lat 5.000, lon 10.000"):
        read_host_grid(small_file(tmp_path / "nan.nc", lf_nan=True))
    # a fill value in the land fraction is reported as the land fraction's (it was reported as tas)
    with pytest.raises(InputError, match="variable 'landfrac': land fraction is missing .* first cell 5"):
        read_host_grid(small_file(tmp_path / "fill.nc", lf_fill=True))


def test_dimensions_are_matched_by_name(tmp_path):
    """A (time, lon, lat) file gives the same cells and values as the (time, lat, lon) one (it was read as if it
    were (time, lat, lon))."""
    a, b = small_file(tmp_path / "latlon.nc"), small_file(tmp_path / "lonlat.nc", order="lon_lat")
    ga, gb = read_host_grid(a), read_host_grid(b)
    assert gb.dims == ("lat", "lon")
    for k in ("lat", "lon", "area", "landfrac"):
        np.testing.assert_array_equal(getattr(ga, k), getattr(gb, k))
    ra = ForcingReader([a], {}, FIELDS, grid_size=ga.size, dims=ga.dims)
    rb = ForcingReader([b], {}, FIELDS, grid_size=gb.size, dims=gb.dims)
    for f in FIELDS:
        np.testing.assert_array_equal(ra.read(f, 3), rb.read(f, 3))
    with netCDF4.Dataset(tmp_path / "other.nc", "w") as ds:  # dimensions that are not the grid's
        ds.createDimension("time", 1)
        ds.createDimension("y", 4)
        ds.createDimension("x", 3)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "seconds since 2015-01-01"
        t[:] = 0
        for f in FIELDS:
            ds.createVariable(f, "f4", ("time", "y", "x"))[:] = VALUES[f]
    with pytest.raises(InputError, match=r"has dimensions \('time', 'y', 'x'\); the host grid's are \('time', 'lat'"):
        ForcingReader([tmp_path / "other.nc"], {}, FIELDS, grid_size=12, dims=("lat", "lon"))


def test_gaps_foreign_calendars_and_long_steps_are_refused(tmp_path):
    with pytest.raises(InputError, match="record 4 starts at 2015-01-01T15:00:00 but record 3 ends at "
                                         "2015-01-01T12:00:00: a gap"):
        ForcingReader([small_file(tmp_path / "gap.nc", times=[0, 10800, 21600, 32400, 54000, 64800])], {}, FIELDS)
    with pytest.raises(InputError, match="not evenly spaced: record 4 at 2015-01-01T15:00:00"):
        ForcingReader([small_file(tmp_path / "gap2.nc", times=[0, 10800, 21600, 32400, 54000, 64800],
                                  bounds=False)], {}, FIELDS)
    with pytest.raises(InputError, match="calendar '360_day' is not supported"):
        ForcingReader([small_file(tmp_path / "360.nc", calendar="360_day")], {}, FIELDS)
    r = ForcingReader([small_file(tmp_path / "ok.nc")], {}, FIELDS)
    assert r.record_for(np.datetime64("2015-01-01T03:00"), 3600) == 1  # a step inside a record: held
    with pytest.raises(InputError, match="spans more than one forcing record"):  # 6 h steps on 3-hourly data
        r.record_for(np.datetime64("2015-01-01T00:00"), 21600)
    with pytest.raises(InputError, match="runs past the end of the forcing"):
        r.record_for(np.datetime64("2015-01-01T21:00"), 21600)


@pytest.mark.parametrize("damage", ["truncated", "bit_flips", "not_netcdf", "directory"])
def test_damaged_forcing_files_are_input_errors(tmp_path, damage):
    """Never a raw library traceback: the error says which file (and record) and that it is damaged. The bit flips
    are in the data (the second half of the demo forcing): the file opens, a record cannot be read."""
    from conftest import DEMO

    src = DEMO.read_bytes()
    path = tmp_path / f"{damage}.nc"
    if damage == "truncated":
        path.write_bytes(src[: len(src) * 2 // 3])
    elif damage == "bit_flips":
        data = bytearray(src)
        for i in range(len(data) // 2, len(data), 4099):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "not_netcdf":
        path.write_text("time,tas\n0,290\n")
    else:
        path.mkdir()
    with pytest.raises(InputError, match=str(path.name)):
        r = ForcingReader([path], {}, FIELDS)
        for f in FIELDS:
            for k in range(r.times.size):
                r.read(f, k)


@pytest.mark.parametrize("units,origin", [
    ("hours since 2015-01-01 00:00 -6:00", "2015-01-01T06:00:00"),  # the CF conventions' own example's form
    ("hours since 2015-01-01 00:00:00 +05:30", "2014-12-31T18:30:00"),
    ("hours since 2015-01-01 00:00:00 -0600", "2015-01-01T06:00:00"),
    ("hours since 2015-1-1 0:0:0 -6", "2015-01-01T06:00:00"),
    ("seconds since 2015-01-01T00:00:00Z", "2015-01-01T00:00:00"),
    ("days since 2015-01-01 00:00:00 UTC", "2015-01-01T00:00:00"),
])
def test_time_zone_offsets_in_time_units_are_honoured(tmp_path, units, origin):
    """Every form of a time-zone offset: the origin is taken in UTC (cftime ignores '-6:00': the forcing was read 6 h
    off); an offset that is not one is an error naming the units."""
    from tamrl_coupler.ncfiles import split_time_units

    assert split_time_units(units, "x")[1] == np.datetime64(origin)
    path = small_file(tmp_path / "tz.nc", times=[0.0, 3.0, 6.0], bounds=False)
    with netCDF4.Dataset(path, "a") as ds:
        ds["time"].units = units.replace("seconds", "hours").replace("days", "hours")
    r = ForcingReader([path], {}, FIELDS)
    assert r.times[0] == np.datetime64(origin)
    with pytest.raises(InputError, match=r"time-zone offset '-99:00' of units .* is not an offset from UTC"):
        split_time_units("hours since 2015-01-01 00:00 -99:00", "x")


def test_a_time_axis_and_bounds_that_disagree_are_refused(tmp_path):
    """Bounds contiguous but 6 h off their time values: which is right cannot be told, so the file is refused."""
    path = small_file(tmp_path / "b.nc")
    with netCDF4.Dataset(path, "a") as ds:
        ds["time_bnds"][:] = ds["time_bnds"][:] + 21600.0
    with pytest.raises(InputError, match=r"time of record 0 \(2015-01-01T00:00:00\) lies outside its bounds "
                                         r"'time_bnds' \[2015-01-01T06:00:00, 2015-01-01T09:00:00\] \(8 records"):
        ForcingReader([path], {}, FIELDS)


def test_a_time_axis_in_the_wrong_units_is_refused(tmp_path):
    """Values in seconds labelled 'hours since': records 10800 h (450 days) apart, each held for 450 days; refused
    (a calendar year of records is fine)."""
    path = small_file(tmp_path / "h.nc", bounds=False)
    with netCDF4.Dataset(path, "a") as ds:
        ds["time"].units = "hours since 2015-01-01 00:00:00"
    with pytest.raises(InputError, match=r"forcing record 0 \(2015-01-01T00:00:00\) is held for 450 days .*values in "
                                         r"seconds labelled 'hours since'"):
        ForcingReader([path], {}, FIELDS)
    from tamrl_coupler.io.forcing_records import check_record_lengths

    years = np.array(["2015-01-01", "2016-01-01", "2017-01-01", "2018-01-01"], dtype="datetime64[s]")
    check_record_lengths(years[:-1], years[1:], "yearly")  # calendar years: fine


@pytest.mark.parametrize("change,message", [
    ("lat_shift", r"lat cell 0 at -15 has bounds \[-25, -15\]: the centre is not inside its cell"),
    ("lon_other_grid", r"lon cell 0 at 0 is 2 degrees wide by its bounds, but the centres are 10 degrees apart"),
    ("transposed", r"lat bounds have shape \(2, 4\), expected \(4, 2\) \(transposed"),
])
def test_cell_bounds_are_checked_against_the_centres(tmp_path, change, message):
    """Bounds shifted by half a cell, of another grid, or transposed: the areas computed from them would be wrong
    (no area variable), so the grid file is refused naming the axis and the cell."""
    path = small_file(tmp_path / "g.nc")
    with netCDF4.Dataset(path, "a") as ds:
        if change == "lat_shift":
            ds["lat_bnds"][:] = ds["lat_bnds"][:] - 5.0
        elif change == "lon_other_grid":
            ds["lon_bnds"][:] = np.stack([LON - 1, LON + 1], 1)
        else:
            ds.createDimension("two", 2)
            ds.createVariable("lat_bnds_t", "f8", ("two", "lat"))[:] = np.stack([LAT - 5, LAT + 5], 0)
            ds["lat"].bounds = "lat_bnds_t"
    with pytest.raises(InputError, match=message):
        read_host_grid(path)
