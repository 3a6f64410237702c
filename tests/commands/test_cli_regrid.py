"""The ``regrid`` and ``weights`` subcommands on real NetCDF files."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest

from tamrl_coupler.cli import main
from tamrl_coupler.regrid import Grid, Regridder, Weights


def _forcing(path):
    """A small CF file on a 2-degree regional grid: one field with fill values (sea), one without, a time axis."""
    lat = np.arange(-19.0, 20.0, 2.0)
    lon = np.arange(1.0, 40.0, 2.0)
    with netCDF4.Dataset(path, "w") as ds:
        ds.title = "test forcing"
        ds.setncatts({"MAP_PROJECTION": "EQUIDISTANT CYLINDRICAL", "SOUTH_WEST_CORNER_LAT": -19.0, "DX": 2.0,
                      "geospatial_lat_min": -20.0, "history": "made by the test"})  # GLDAS / ACDD grid attributes
        ds.createDimension("time", None)
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2015-01-01"
        t[:] = [0.0, 1.0]
        for nm, vals, units, std in (("lat", lat, "degrees_north", "latitude"), ("lon", lon, "degrees_east",
                                                                               "longitude")):
            v = ds.createVariable(nm, "f4", (nm,))
            v.units, v.standard_name = units, std
            v[:] = vals
        la, lo = np.meshgrid(lat, lon, indexing="ij")
        tas = ds.createVariable("tas", "f4", ("time", "lat", "lon"), fill_value=-9999.0)
        tas.units, tas.long_name = "K", "air temperature"
        field = 290 + 0.1 * la + 0.05 * lo
        data = np.ma.masked_array(np.stack([field, field + 1]), mask=np.stack([lo > 30] * 2))
        tas[:] = data
        pr = ds.createVariable("pr", "f4", ("time", "lat", "lon"))
        pr.units = "kg m-2 s-1"
        pr[:] = np.stack([np.full_like(la, 1e-5)] * 2)
        orog = ds.createVariable("orog", "f4", ("lat", "lon"))  # a static field: no time dimension
        orog.units = "m"
        orog[:] = np.full_like(la, 250.0)
    return lat, lon


def test_regrid_command_keeps_attributes_and_conserves(tmp_path, capsys):
    inp, out = tmp_path / "in.nc", tmp_path / "out.nc"
    _forcing(inp)
    rc = main(["regrid", str(inp), "--grid", "r144x96", "--method", "conservative", "--output", str(out),
               "--backend", "native"])
    assert rc == 0, capsys.readouterr().err
    with netCDF4.Dataset(out) as ds, netCDF4.Dataset(inp) as src:
        assert ds.title == "test forcing" and "tamrl-coupler regrid" in ds.history
        # the source grid's own description is gone (it would be wrong now); what made the weights is said
        assert not {"MAP_PROJECTION", "SOUTH_WEST_CORNER_LAT", "DX", "geospatial_lat_min"} & set(ds.ncattrs())
        assert ds.regrid_weights == "conservative weights made by the native backend"
        assert "(conservative weights made by the native backend); dropped the source grid's global attributes " \
               "MAP_PROJECTION, SOUTH_WEST_CORNER_LAT, DX, geospatial_lat_min" in ds.history
        assert ds.history.endswith("\nmade by the test")
        assert ds["tas"].units == "K" and ds["tas"].long_name == "air temperature"
        assert ds["tas"].dimensions == ("time", "lat", "lon") and ds["tas"].shape == (2, 96, 144)
        assert ds["time"][:].tolist() == [0.0, 1.0] and ds["lat"].bounds == "lat_bnds"
        tas = ds["tas"][:]
        assert tas.mask.any() and (~tas.mask).sum() > 50
        # the land integral with the regridder's own areas and land fractions is kept
        g = Grid.from_file(inp)
        rg = Regridder(g, "r144x96", "conservative", backend="native")
        x = np.ma.filled(src["tas"][0].astype(np.float64), np.nan).ravel()
        land = np.isfinite(x)
        total = np.sum(rg.weights.area_a * land * np.nan_to_num(x))
        fd = rg.dst_fraction(land)
        got = np.sum(rg.weights.area_b * fd * np.ma.filled(tas[0].astype(np.float64), 0.0).ravel())
        assert abs(got - total) / total < 1e-6  # float32 output
        assert np.allclose(ds["pr"][:].compressed(), 1e-5, rtol=1e-6)
        assert ds["orog"].dimensions == ("lat", "lon") and np.allclose(ds["orog"][:].compressed(), 250.0)


def test_weights_command_and_reuse(tmp_path, capsys):
    wfile = tmp_path / "w.nc"
    assert main(["weights", "r144x96", "r360x180", "--method", "bilinear", "--backend", "native", "--out",
                 str(wfile)]) == 0
    assert "bilinear weights r144x96" in capsys.readouterr().out
    w = Weights.read(wfile)
    assert w.method == "bilinear" and w.matrix.shape == (64800, 13824)
    inp, out = tmp_path / "in.nc", tmp_path / "out.nc"
    _forcing(inp)
    # a weight file for other grids is refused with the sizes named
    rc = main(["regrid", str(inp), "--grid", "r360x180", "--out", str(out), "--weights", str(wfile)])
    err = capsys.readouterr().err
    assert rc == 1 and "map 13824 source to 64800 destination cells" in err and "400 source" in err


@pytest.mark.parametrize("argv,message", [
    (["regrid", "IN", "--grid", "r12", "--output", "o.nc"], "neither a CDO-style name like 'r360x180' nor an existing"),
    (["regrid", "missing.nc", "--grid", "r12x6", "--output", "o.nc"], "input file "),
    (["weights", "r144x96", "r360x180", "--method", "conservative_2nd", "--backend", "native", "--out", "w.nc"],
     "backend 'native' cannot make conservative_2nd weights"),
])
def test_cli_errors(tmp_path, capsys, argv, message):
    inp = tmp_path / "in.nc"
    _forcing(inp)
    argv = [str(inp) if a == "IN" else (str(tmp_path / a) if a.endswith(".nc") else a) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "grid file" not in err


def test_regrid_handles_a_bounds_dimension_named_nv_and_leaves_no_temporary_file(tmp_path, capsys):
    """CF files name their bounds dimension nv, as the package's own demo forcing does; the output's grid bounds
    share it (the command crashed and left its temporary file). A failed write leaves nothing behind."""
    from conftest import DEMO

    out = tmp_path / "out.nc"
    assert main(["regrid", str(DEMO), "--grid", "r72x36", "--backend", "native", "--variables", "tas", "pr",
                 "--output", str(out)]) == 0, capsys.readouterr().err
    with netCDF4.Dataset(out) as ds:
        assert ds["tas"].shape == (280, 36, 72) and ds["lat_bnds"].dimensions == ("lat", "nv")
        assert ds["time_bnds"].dimensions == ("time", "nv")
    (tmp_path / "as_dir.nc").mkdir()
    assert main(["regrid", str(DEMO), "--grid", "r72x36", "--backend", "native", "--variables", "tas",
                 "--output", str(tmp_path / "as_dir.nc")]) == 1
    assert "is a directory" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.tmp")) and not list(tmp_path.glob("*.tmp"))


@pytest.mark.mpi
def test_regrid_refuses_to_run_on_several_ranks(tmp_path):
    """Under mpiexec -n 3 every rank ran the whole regrid and wrote the same file (corrupt in 3 of 3 tries): now
    every rank stops before doing anything, the error printed once."""
    import os
    import subprocess
    import sys

    from conftest import DEMO, REPO, require_tools

    require_tools("mpiexec")
    out = tmp_path / "out.nc"
    res = subprocess.run(["mpiexec", "-n", "3", sys.executable, "-m", "tamrl_coupler", "regrid", str(DEMO), "--grid",
                          "r72x36", "--output", str(out)], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), start_new_session=True)
    assert res.returncode != 0
    assert res.stderr.count("'regrid' runs on one process, but was launched on 3 ranks") == 1, res.stderr
    assert not out.exists() and not list(tmp_path.iterdir())
