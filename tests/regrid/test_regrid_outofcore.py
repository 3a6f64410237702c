"""Files regridded slab by slab: bit for bit the whole-array result for any slab size, packed variables decoded and
written as floats, integer fields refused for conservative methods, an output that is the input refused; dask
arrays regridded lazily with the eager numbers."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest

from tamrl_coupler.cli import main
from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid import Grid, Regridder
from tamrl_coupler.regrid.regridfile import regrid_file

SRC = Grid.from_name("r72x36")


def _forcing(path, n_time: int = 23, packed: bool = False, integer: bool = False) -> np.ndarray:
    """A CF file on r72x36 (lat, lon with bounds): tas with a land mask that changes with time (fill elsewhere);
    ``packed``: tas as int16 with scale_factor/add_offset, as the Copernicus data store writes ERA5."""
    g = SRC
    rng = np.random.default_rng(1)
    tas = 260 + 40 * rng.random((n_time, *g.shape))
    land = rng.random((n_time, *g.shape)) < 0.7
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("lat", g.shape[0])
        ds.createDimension("lon", g.shape[1])
        ds.createDimension("nv", 2)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "hours since 2015-01-01"
        t[:] = 3.0 * np.arange(n_time)
        for nm, c, b, u in (("lat", g.lat1d, g.lat_bounds, "degrees_north"), ("lon", g.lon1d, g.lon_bounds,
                                                                              "degrees_east")):
            v = ds.createVariable(nm, "f8", (nm,))
            v[:], v.units, v.bounds = c, u, f"{nm}_bnds"
            ds.createVariable(f"{nm}_bnds", "f8", (nm, "nv"))[:] = b
        if packed:
            v = ds.createVariable("tas", "i2", ("time", "lat", "lon"), fill_value=np.int16(-32767))
            v.scale_factor, v.add_offset = np.float32(0.002), np.float32(280.0)
            v.units = "K"
            v[:] = np.ma.masked_where(~land, tas)  # netCDF4 packs on write
            v.set_auto_maskandscale(True)
            decoded = np.ma.filled(v[:].astype(np.float32), np.nan)
        elif integer:
            v = ds.createVariable("lai_class", "i4", ("time", "lat", "lon"))
            v[:] = (tas // 10).astype(np.int32)
            decoded = v[:]
        else:
            v = ds.createVariable("tas", "f8", ("time", "lat", "lon"), fill_value=-9999.0)
            v.units = "K"
            v[:] = np.ma.masked_where(~land, tas)
            decoded = np.where(land, tas, np.nan)
    return decoded


def _read(path, name="tas") -> np.ndarray:
    with netCDF4.Dataset(path) as ds:
        return np.ma.filled(ds[name][:].astype(np.float64), np.nan), ds[name].dtype


@pytest.mark.parametrize("method", ["conservative", "bilinear"])
def test_slabs_equal_the_whole_array_bit_for_bit(tmp_path, method):
    inp = tmp_path / "in.nc"
    x = _forcing(inp)
    whole, slabs = tmp_path / "whole.nc", tmp_path / "slabs.nc"
    regrid_file(inp, "r36x18", whole, method=method, slab_bytes=2**40)
    seen = []
    regrid_file(inp, "r36x18", slabs, method=method, slab_bytes=3 * 8 * SRC.size,
                progress=lambda done, total: seen.append((done, total)))
    a, b = _read(whole)[0], _read(slabs)[0]
    assert np.array_equal(a, b, equal_nan=True)
    assert seen[-1] == (8, 8) and len(seen) == 8  # 23 steps in slabs of 3
    # and the in-memory Regridder on the whole array gives the same bits
    y = Regridder(SRC, "r36x18", method)(x, skipna=True)
    assert np.array_equal(a, y, equal_nan=True)


def test_dask_arrays_stay_lazy_with_the_eager_numbers():
    import dask.array as da

    x = np.random.default_rng(2).random((10, *SRC.shape))
    x[:, 3, 4] = np.nan
    rg = Regridder(SRC, "r36x18", "conservative")
    lazy = rg(da.from_array(x, chunks=(3, 36, 36)), skipna=True)  # a chunked grid dimension is joined first
    assert isinstance(lazy, da.Array) and lazy.shape == (10, 18, 36)
    assert np.array_equal(lazy.compute(), rg(x, skipna=True), equal_nan=True)


def test_packed_int16_is_decoded_and_written_as_float(tmp_path):
    inp, out = tmp_path / "era5_like.nc", tmp_path / "out.nc"
    decoded = _forcing(inp, n_time=4, packed=True)
    assert main(["regrid", str(inp), "--grid", "r36x18", "--output", str(out), "--quiet"]) == 0
    y, dtype = _read(out)
    assert dtype == np.float32  # the type of the input's scale_factor, not its int16
    with netCDF4.Dataset(out) as ds:
        assert not {"scale_factor", "add_offset"} & set(ds["tas"].ncattrs())
    ref = Regridder(SRC, "r36x18", "conservative")(decoded, skipna=True)
    ok = np.isfinite(ref)
    assert np.array_equal(ok, np.isfinite(y)) and np.max(np.abs(y[ok] - ref[ok])) < 1e-4  # float32 rounding
    assert 255 < np.nanmin(y) and np.nanmax(y) < 305  # (the packed integers regridded were around +-10000)
    # --repack: the input's packing kept (values within 1 packing step of the float result)
    assert main(["regrid", str(inp), "--grid", "r36x18", "--output", str(tmp_path / "re.nc"), "--repack",
                 "--quiet"]) == 0
    with netCDF4.Dataset(tmp_path / "re.nc") as ds:
        assert ds["tas"].dtype == np.int16 and float(ds["tas"].scale_factor) == pytest.approx(0.002)
        z = np.ma.filled(ds["tas"][:].astype(np.float64), np.nan)
    assert np.nanmax(np.abs(z - y)) <= 0.0011


def test_integer_fields_refused_for_conservative_unless_cast(tmp_path):
    inp = tmp_path / "classes.nc"
    _forcing(inp, n_time=2, integer=True)
    with pytest.raises(RegridError, match=r"variable 'lai_class' is of integer type int32 .* cast it explicitly"):
        regrid_file(inp, "r36x18", tmp_path / "o.nc")
    assert not (tmp_path / "o.nc").exists()
    assert regrid_file(inp, "r36x18", tmp_path / "o.nc", cast_integers=True) == 1
    assert _read(tmp_path / "o.nc", "lai_class")[1] == np.float64
    rg = Regridder(SRC, "r36x18", "conservative")
    with pytest.raises(RegridError, match=r"integer type int64: conservative regridding gives fractional values"):
        rg(np.ones(SRC.shape, np.int64))
    assert rg(np.ones(SRC.shape, np.int64).astype(float)).shape == (18, 36)
    assert Regridder(SRC, "r36x18", "nearest_s2d")(np.ones(SRC.shape, np.int64)).shape == (18, 36)


def test_output_that_is_the_input_is_refused(tmp_path):
    inp = tmp_path / "in.nc"
    _forcing(inp, n_time=2)
    before = inp.read_bytes()
    link = tmp_path / "link.nc"
    link.symlink_to(inp)
    for out in (inp, link, tmp_path / "." / "in.nc"):
        with pytest.raises(RegridError, match="is the input file"):
            regrid_file(inp, "r36x18", out)
    assert main(["regrid", str(link), "--grid", "r36x18", "--output", str(inp)]) != 0
    assert inp.read_bytes() == before
