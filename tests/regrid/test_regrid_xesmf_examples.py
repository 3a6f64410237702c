"""xESMF's documented examples (its notebooks Rectilinear_grid, Curvilinear_grid, Pure_numpy, Using_LocStream,
Reuse_regridder, Masking), written here in their manner: each body runs unchanged under ``import xesmf as xe``
except for data made here instead of ``xr.tutorial``. Numbers are checked against what the method must give."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import tamrl_coupler.regrid as xe  # the only change from xESMF code
from tamrl_coupler.errors import RegridError


def _air_like() -> xr.Dataset:
    """A stand-in for xr.tutorial's 'air_temperature' (NCEP 2.5 degree over North America, 1-D lat/lon)."""
    lat = np.arange(75.0, 14.9, -2.5)
    lon = np.arange(200.0, 330.1, 2.5)
    t = np.arange(4)
    air = 250 + 0.5 * lat[None, :, None] + 0.1 * lon[None, None, :] + t[:, None, None]
    return xr.Dataset({"air": (("time", "lat", "lon"), air, {"units": "K"})},
                      coords={"time": t, "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                              "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})})


def test_rectilinear_grid_bilinear():
    ds = _air_like()
    ds_out = xr.Dataset({"lat": (["lat"], np.arange(16, 75, 1.0), {"units": "degrees_north"}),
                         "lon": (["lon"], np.arange(200, 330, 1.5), {"units": "degrees_east"})})
    regridder = xe.Regridder(ds, ds_out, "bilinear")
    dr_out = regridder(ds["air"], keep_attrs=True)
    assert dr_out.dims == ("time", "lat", "lon") and dr_out.shape == (4, 59, 87)
    assert dr_out.attrs["units"] == "K"
    # a field linear in lat and lon is reproduced exactly by bilinear interpolation
    expect = 250 + 0.5 * ds_out.lat + 0.1 * ds_out.lon + ds.time
    np.testing.assert_allclose(dr_out.transpose("time", "lat", "lon"), expect.transpose("time", "lat", "lon"),
                               rtol=1e-12)
    assert regridder(ds["air"], keep_attrs=False).attrs.get("units") is None


def test_curvilinear_grid_global_conservative():
    ds_in = xe.util.grid_global(5, 4)
    ds_out = xe.util.grid_global(2, 2)
    ds_in["data"] = np.cos(np.deg2rad(ds_in.lat)) ** 2 * np.cos(np.deg2rad(2 * ds_in.lon)) + 2
    regridder = xe.Regridder(ds_in, ds_out, "conservative")
    dr_out = regridder(ds_in["data"])
    assert dr_out.dims == ("y", "x") and dr_out.shape == (90, 180)
    w = regridder.weights  # a scipy sparse matrix (n_out, n_in) that also carries the areas it was made with
    assert w.shape == (90 * 180, 45 * 72) and w.nnz > 0
    total_in = np.sum(w.area_a * ds_in["data"].values.ravel())
    assert abs(np.sum(w.area_b * dr_out.values.ravel()) / total_in - 1) < 1e-12


def test_pure_numpy_dict_grids():
    grid_in = {"lon": np.linspace(0, 40, 20), "lat": np.linspace(0, 20, 10)}
    grid_out = {"lon": np.linspace(0, 40, 40), "lat": np.linspace(0, 20, 20)}
    regridder = xe.Regridder(grid_in, grid_out, "bilinear")
    lon2, lat2 = np.meshgrid(grid_in["lon"], grid_in["lat"])
    data = 2 * lon2 + 3 * lat2
    data_out = regridder(data)
    lo, la = np.meshgrid(grid_out["lon"], grid_out["lat"])
    np.testing.assert_allclose(data_out, 2 * lo + 3 * la, rtol=1e-12)
    # dict grids with vertices for conservative weights
    grid_in_b = {"lon": np.arange(0.5, 40), "lat": np.arange(0.5, 20), "lon_b": np.arange(0, 41.0),
                 "lat_b": np.arange(0, 21.0)}
    grid_out_b = {"lon": np.arange(1.0, 40, 2), "lat": np.arange(1.0, 20, 2), "lon_b": np.arange(0, 41.0, 2),
                  "lat_b": np.arange(0, 21.0, 2)}
    cons = xe.Regridder(grid_in_b, grid_out_b, "conservative")
    assert cons(np.ones((20, 40))).shape == (10, 20)
    np.testing.assert_allclose(cons(np.ones((20, 40))), 1.0, rtol=1e-13)


def test_locstream_out_towers():
    ds = _air_like()
    ds_locs = xr.Dataset({"lat": ("locations", [30.0, 45.0, 60.0]), "lon": ("locations", [250.0, 270.0, 300.0])})
    regridder = xe.Regridder(ds, ds_locs, "bilinear", locstream_out=True)
    out = regridder(ds["air"])
    assert out.dims == ("time", "locations")
    np.testing.assert_allclose(out.isel(time=0), 250 + 0.5 * ds_locs.lat + 0.1 * ds_locs.lon, rtol=1e-12)
    nearest = xe.Regridder(ds, ds_locs, "nearest_s2d", locstream_out=True)(ds["air"])
    assert np.abs(nearest - out).max() < 0.5 * 2.5 * 0.6  # within half a cell of the linear field's slope


def test_reuse_regridder_and_to_netcdf(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds_in = xe.util.grid_global(5, 4)
    ds_out = xe.util.grid_global(2, 2)
    regridder = xe.Regridder(ds_in, ds_out, "bilinear", periodic=True)
    fn = regridder.to_netcdf()
    assert fn.name == "bilinear_45x72_90x180_peri.nc" and fn.exists()
    regridder2 = xe.Regridder(ds_in, ds_out, "bilinear", weights=fn)
    assert (regridder2.weights.matrix != regridder.weights.matrix).nnz == 0
    again = xe.Regridder(ds_in, ds_out, "bilinear", filename="w.nc")  # written when made
    assert (tmp_path / "w.nc").exists()
    reused = xe.Regridder(ds_in, ds_out, "bilinear", filename="w.nc", reuse_weights=True)
    assert reused.backend == "file" and (reused.weights.matrix != again.weights.matrix).nnz == 0
    with pytest.raises(RegridError, match="reuse_weights=True needs filename"):
        xe.Regridder(ds_in, ds_out, "bilinear", reuse_weights=True)
    # the weights of one grid pair refused for another pair of the same sizes (shifted by half the globe)
    shifted = xe.util.grid_global(5, 4, lon1=360)
    with pytest.raises(RegridError, match=r"weights from w.nc used for grids .*: source cell \d+ is at lat [-0-9.]+, "
                                          r"lon -177.5000 in the weight file but at lat [-0-9.]+, lon 2.5000 on grid "
                                          r".* \(3240 centres differ\)"):
        xe.Regridder(shifted, ds_out, "bilinear", filename="w.nc", reuse_weights=True)


def test_masking_conservative_normed():
    ds = xe.util.grid_global(20, 15)
    ds_out = xe.util.grid_global(10, 10)
    ds["mask"] = (("y", "x"), (np.abs(ds.lat.values) < 40).astype(int))
    ds["data"] = xr.full_like(ds.lat, 5.0)
    normed = xe.Regridder(ds, ds_out, "conservative_normed")(ds["data"])
    plain = xe.Regridder(ds, ds_out, "conservative")(ds["data"])
    partial = (np.abs(ds_out.lat.values) > 40) & (np.abs(ds_out.lat.values) < 50)  # the mask edge is at 45
    np.testing.assert_allclose(normed.values[np.isfinite(normed.values)], 5.0, rtol=1e-12)
    # about half of those cells lies over the mask, counted as zero (great-circle edges: a little more than half)
    assert (plain.values[partial] > 2.5).all() and (plain.values[partial] < 3.0).all()
    np.testing.assert_allclose(normed.values[partial], 5.0, rtol=1e-12)
    assert np.isnan(normed.values[np.abs(ds_out.lat.values) > 60]).all()


def test_unmapped_and_extrapolation_options():
    src = {"lon": np.arange(0.5, 20), "lat": np.arange(0.5, 10), "lon_b": np.arange(0, 21.0),
           "lat_b": np.arange(0, 11.0)}
    dst = {"lon": np.arange(-4.5, 25), "lat": np.arange(0.5, 10), "lon_b": np.arange(-5, 25.1),
           "lat_b": np.arange(0, 11.0)}
    x = np.full((10, 20), 3.0)
    zero = xe.Regridder(src, dst, "bilinear", unmapped_to_nan=False)(x)
    nan = xe.Regridder(src, dst, "bilinear", unmapped_to_nan=True)(x)
    ext = xe.Regridder(src, dst, "bilinear", extrap_method="nearest_s2d")(x)
    idw = xe.Regridder(src, dst, "bilinear", extrap_method="inverse_dist", extrap_num_src_pnts=4)(x)
    assert (zero[:, 0] == 0).all() and np.isnan(nan[:, 0]).all()
    np.testing.assert_allclose(ext, 3.0, rtol=1e-13)
    np.testing.assert_allclose(idw, 3.0, rtol=1e-13)
    with pytest.raises(RegridError, match="creep_fill needs esmpy"):
        xe.Regridder(src, dst, "bilinear", extrap_method="creep_fill")


def test_skipna_na_thres_and_output_chunks():
    ds = xe.util.grid_global(10, 10)
    ds_out = xe.util.grid_global(20, 20)
    data = np.ones(ds.lat.shape)
    data[:, :9] = np.nan  # half of the globe missing
    da = xr.DataArray(data, dims=("y", "x"), coords={"lat": ds.lat, "lon": ds.lon})
    rg = xe.Regridder(ds, ds_out, "conservative")
    keep = rg(da, skipna=True)
    strict = rg(da, skipna=True, na_thres=0.0)  # any missing input makes the output missing
    assert np.isfinite(keep).sum() > np.isfinite(strict).sum() > 0
    np.testing.assert_allclose(keep.values[np.isfinite(keep.values)], 1.0, rtol=1e-12)
    chunked = rg(da.expand_dims(time=4).chunk({"time": 1}), output_chunks={"y": 3, "x": 6})
    assert chunked.chunks[1:] == ((3, 3, 3), (6, 6, 6)) and np.allclose(chunked.compute()[0], rg(da),
                                                                        equal_nan=True)


def test_nearest_d2s_sends_every_source_to_one_destination():
    ds_in = xe.util.grid_global(5, 4)
    ds_out = xe.util.grid_global(20, 20)
    x = np.random.default_rng(0).random(ds_in.lat.shape)
    y = xe.Regridder(ds_in, ds_out, "nearest_d2s")(x)
    assert abs(y.sum() - x.sum()) < 1e-9 * x.sum()  # weight 1 each (ESMF's NEAREST_DTOS): the sum is kept
    s2d = xe.Regridder(ds_in, ds_out, "nearest_s2d")(x)
    assert np.isin(s2d, x).all()  # each destination takes one source value
