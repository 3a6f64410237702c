"""The xarray side of the Regridder (the xESMF convention): grids from CF attributes and bounds, results on the
target grid with its coordinates, bounds and the fields' attributes, other dimensions kept, dask inputs lazy."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tamrl_coupler.errors import RegridError
from tamrl_coupler.regrid import Grid, Regridder


def _gaussian_like_lats(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Unevenly spaced latitude bounds (finer near the equator), as a spectral model's grid has: bounds must come
    from the file, they cannot be inferred from the centres."""
    edges = np.rad2deg(np.arcsin(np.linspace(-1.0, 1.0, n + 1)))
    return 0.5 * (edges[:-1] + edges[1:]), np.stack([edges[:-1], edges[1:]], axis=1)


def _cmip_dataset(n_time: int = 4, n_lev: int = 2) -> xr.Dataset:
    """A CMIP-style Dataset: lat/lon/time bounds on ``bnds``, CF attributes, a level dimension, grid attributes."""
    lat, lat_b = _gaussian_like_lats(24)
    lon = np.arange(48) * 7.5
    lon_b = np.stack([lon - 3.75, lon + 3.75], axis=1)
    rng = np.random.default_rng(0)
    ta = 250.0 + 40.0 * rng.random((n_time, n_lev, lat.size, lon.size))
    t = np.arange(n_time) * 1.0
    ta_attrs = {"units": "K", "standard_name": "air_temperature", "long_name": "Air Temperature",
                "cell_measures": "area: areacella"}
    ds = xr.Dataset(
        {"ta": (("time", "plev", "lat", "lon"), ta, ta_attrs),
         "lat_bnds": (("lat", "bnds"), lat_b), "lon_bnds": (("lon", "bnds"), lon_b),
         "time_bnds": (("time", "bnds"), np.stack([t, t + 1], axis=1))},
        coords={"time": ("time", t, {"units": "days since 2015-01-01", "calendar": "standard", "bounds": "time_bnds"}),
                "plev": ("plev", [85000.0, 50000.0][:n_lev], {"units": "Pa", "positive": "down"}),
                "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude", "axis": "Y",
                                     "bounds": "lat_bnds"}),
                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude", "axis": "X",
                                     "bounds": "lon_bnds"})},
        attrs={"Conventions": "CF-1.7 CMIP-6.2", "source_id": "TEST-ESM", "grid_label": "gn",
               "grid": "T31 Gaussian-like", "nominal_resolution": "500 km", "title": "a CMIP-style file"})
    return ds


def _integral(values: np.ndarray, area: np.ndarray) -> np.ndarray:
    return (values.reshape(*values.shape[:-2], -1) * area).sum(axis=-1)


def test_cmip_file_with_bnds_round_trip_with_attributes(tmp_path):
    path = tmp_path / "ta_cmip.nc"
    _cmip_dataset().to_netcdf(path)
    ds = xr.open_dataset(path, decode_times=False)
    rg = Regridder(ds, "r36x18", method="conservative", backend="native")
    # the source grid is the file's: uneven latitude bounds read through the CF 'bounds' attribute
    np.testing.assert_array_equal(rg.src.lat_bounds, ds["lat_bnds"].values)
    out = rg(ds)
    assert out["ta"].dims == ("time", "plev", "lat", "lon") and out["ta"].shape == (4, 2, 18, 36)
    # conservative: the area integral of every (time, level) field is kept (the source covers the sphere)
    np.testing.assert_allclose(_integral(out["ta"].values, rg.dst.area), _integral(ds["ta"].values, rg.src.area),
                               rtol=1e-12)
    # the numpy path gives the same numbers
    np.testing.assert_array_equal(out["ta"].values, rg(ds["ta"].values))
    # target coordinates with CF attributes and bounds; the field's attributes; non-spatial variables kept
    assert out["lat"].attrs["standard_name"] == "latitude" and out["lon"].attrs["units"] == "degrees_east"
    assert out["lat"].attrs["bounds"] == "lat_bnds" and out["lat_bnds"].dims == ("lat", "bnds")
    np.testing.assert_array_equal(out["lat_bnds"].values, Grid.from_name("r36x18").lat_bounds)
    assert out["ta"].attrs["units"] == "K" and out["ta"].attrs["long_name"] == "Air Temperature"
    assert "cell_measures" not in out["ta"].attrs  # it named the source grid's cell areas
    assert out["ta"].attrs["regrid_method"] == "conservative (native) from ta_cmip (24, 48)"
    np.testing.assert_array_equal(out["time_bnds"].values, ds["time_bnds"].values)
    assert out["plev"].attrs["positive"] == "down"
    # global attributes kept, except those that described the source grid
    assert out.attrs["source_id"] == "TEST-ESM" and out.attrs["title"] == "a CMIP-style file"
    assert not {"grid_label", "grid", "nominal_resolution"} & set(out.attrs)
    # written and read back: a CF file on the target grid, attributes intact
    out.to_netcdf(tmp_path / "ta_r36x18.nc")
    back = xr.open_dataset(tmp_path / "ta_r36x18.nc", decode_times=False)
    assert back["ta"].attrs["long_name"] == "Air Temperature" and back["lat"].attrs["bounds"] == "lat_bnds"
    again = Regridder(back, ds, method="conservative", backend="native")  # and back onto the file's own grid
    np.testing.assert_array_equal(again.src.lat_bounds, Grid.from_name("r36x18").lat_bounds)
    home = again(back)
    assert home["lat"].attrs == ds["lat"].attrs  # the target Dataset's own coordinates and attributes
    np.testing.assert_array_equal(home["lat_bnds"].values, ds["lat_bnds"].values)
    np.testing.assert_allclose(_integral(home["ta"].values, again.dst.area), _integral(ds["ta"].values, rg.src.area),
                               rtol=1e-12)


def test_dask_chunked_time_axis_is_regridded_lazily():
    dask = pytest.importorskip("dask")
    ds = _cmip_dataset(n_time=6)
    rg = Regridder(ds, "r36x18", method="bilinear", backend="native")
    calls = []

    class Counting(dask.callbacks.Callback):
        def _start(self, dsk):
            calls.append(len(dsk))

    with Counting():
        lazy = rg(ds.chunk({"time": 2, "lat": 12}))  # a chunked grid dimension is brought into one chunk
        assert calls == []  # nothing computed yet
        assert isinstance(lazy["ta"].data, dask.array.Array)
        assert lazy["ta"].chunks == ((2, 2, 2), (2,), (18,), (36,))
        values = lazy["ta"].values
    assert calls  # computed on demand, chunk by chunk
    np.testing.assert_array_equal(values, rg(ds)["ta"].values)


def test_dataarray_mask_variable_and_grid_target():
    ds = _cmip_dataset(n_time=2, n_lev=1)
    ds["mask"] = (("lat", "lon"), (np.abs(ds["lat"].values)[:, None] < 60) * np.ones((1, ds.sizes["lon"]), int))
    ds["ta"] = ds["ta"].where(ds["mask"] == 1, 1e20)  # fill values where the mask says the cells do not take part
    rg = Regridder(ds, "r36x18", method="conservative", backend="native")
    assert rg.src.mask is not None and rg.src.mask.sum() < rg.src.size
    out = rg(ds["ta"])  # a DataArray in, a DataArray out
    assert isinstance(out, xr.DataArray) and out.dims == ("time", "plev", "lat", "lon")
    assert np.nanmax(out.values) < 300  # masked cells never reached the result
    assert np.isnan(out.sel(lat=85.0).values).all()  # no active source there
    assert out["lat"].attrs["standard_name"] == "latitude"


def test_regridder_from_grids_takes_xarray_fields_and_checks_their_grid():
    ds = _cmip_dataset(n_time=1, n_lev=1)
    lat, lat_b = _gaussian_like_lats(24)
    src = Grid.regular(lat, ds["lon"].values, lat_b, ds["lon_bnds"].values)
    rg = Regridder(src, Grid.points([10.0, -20.0], [30.0, 200.0]), method="bilinear", backend="native")
    out = rg(ds["ta"])
    assert out.dims == ("time", "plev", "cell") and out.shape == (1, 1, 2)
    np.testing.assert_array_equal(out.values, rg(ds["ta"].values))
    with pytest.raises(RegridError, match=r"the field's grid \{'lat': 12, 'lon': 48\} is not the regridder's "
                                          r"source grid"):
        rg(ds["ta"].isel(lat=slice(0, 12)))


def test_numpy_and_torch_keep_working():
    import torch

    rg = Regridder("r36x18", "r18x9", method="conservative", backend="native")
    x = np.random.default_rng(1).random((3, 18, 36))
    np.testing.assert_array_equal(rg(torch.from_numpy(x)).numpy(), rg(x))
    assert rg(x).shape == (3, 9, 18)
