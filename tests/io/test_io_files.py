"""The product's files: the CF forcing reader, restart files, the CF flux file (written and read back)."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
from conftest import DEMO

from tamrl_coupler.errors import InputError
from tamrl_coupler.io.cfcheck import cfchecks
from tamrl_coupler.io.cfcoords import HostGridInfo
from tamrl_coupler.io.fluxfile import FluxFileWriter
from tamrl_coupler.io.forcing import ForcingReader, expand_files
from tamrl_coupler.io.restart import read_restart, write_restart
from tamrl_coupler.physics.carbon import SignConvention
from tamrl_coupler.physics.units import flux_unit


# --- forcing reader ------------------------------------------------------------------------------------------------
def _small_forcing(path: Path, n_t: int = 4, t_offset: int = 0, tas_units: str = "K", rename: dict | None = None,
                   times: list[int] | None = None) -> Path:
    rename = rename or {}
    with netCDF4.Dataset(DEMO) as src, netCDF4.Dataset(path, "w") as dst:
        dst.createDimension("time", None)
        for d in ("lat", "lon", "nv"):
            dst.createDimension(d, len(src.dimensions[d]))
        t = dst.createVariable("time", "f8", ("time",))
        t.units = "seconds since 2015-01-01 00:00:00"
        t[:] = times if times is not None else t_offset + 10800 * np.arange(n_t)
        for name in ("lat", "lon", "lat_bnds", "lon_bnds", "landfrac", "cell_area"):
            v = src[name]
            o = dst.createVariable(name, v.dtype, v.dimensions)
            o.setncatts({k: v.getncattr(k) for k in v.ncattrs()})
            o[:] = v[:]
        for name in ("tas", "huss", "ps", "rsds", "pr"):
            v = src[name]
            o = dst.createVariable(rename.get(name, name), "f4", v.dimensions, fill_value=np.float32(1e20))
            o.units = tas_units if name == "tas" else v.units
            vals = v[:n_t]
            if name == "tas" and tas_units == "degC":
                vals = vals - 273.15
            o[:] = vals
    return path


def test_forcing_reader_mapping_glob_units(tmp_path):
    _small_forcing(tmp_path / "f_a.nc", tas_units="degC", rename={"tas": "t2m", "pr": "Rainf"})
    _small_forcing(tmp_path / "f_b.nc", t_offset=4 * 10800, tas_units="degC", rename={"tas": "t2m", "pr": "Rainf"})
    files = expand_files(["f_*.nc"], tmp_path)
    assert [f.name for f in files] == ["f_a.nc", "f_b.nc"]
    r = ForcingReader(files, {"tas": "t2m", "pr": "Rainf"}, ["tas", "huss", "ps", "rsds", "pr"])
    assert r.times.size == 8 and r.record_for(np.datetime64("2015-01-01T13:00")) == 4
    with netCDF4.Dataset(DEMO) as d:
        ref = np.asarray(d["tas"][1], dtype=np.float64).ravel()  # record 5 = the second file's record 1
    land = ref < 1e19
    got = r.read("tas", 5)
    np.testing.assert_allclose(got[land], ref[land], atol=1e-4)  # degC in the file -> K
    assert (got[~land] >= 1e19).all()  # fill values stay recognisable
    with pytest.raises(InputError, match="no forcing record covers"):
        r.record_for(np.datetime64("2015-01-02T00:00"))
    r.close()


def test_forcing_reader_errors(tmp_path):
    f = _small_forcing(tmp_path / "a.nc", rename={"huss": "q"})
    with pytest.raises(InputError, match="variable 'huss' or one with standard_name 'specific_humidity'"):
        ForcingReader([f], {}, ["tas", "huss"])
    with pytest.raises(InputError, match="'q2' \\(mapped from huss\\) is missing"):
        ForcingReader([f], {"huss": "q2"}, ["huss"])
    with pytest.raises(InputError, match="not an import field"):
        ForcingReader([f], {"temperature": "tas"}, ["tas"])
    with pytest.raises(InputError, match="host grid has 100"):
        ForcingReader([f], {}, ["tas"], grid_size=100)
    g = _small_forcing(tmp_path / "b.nc", times=[0, 10800, 10800, 32400])
    with pytest.raises(InputError, match="not strictly increasing: record 2"):
        ForcingReader([g], {}, ["tas"])
    with pytest.raises(InputError, match="matches no file"):
        expand_files(["nothing_*.nc"], tmp_path)


# --- restart files -------------------------------------------------------------------------------------------------
def test_restart_round_trip_and_atomicity(tmp_path):
    path = tmp_path / "r.nc"
    a = np.arange(12.0).reshape(4, 3)
    write_restart(path, {"next_time": 10800.0}, {"x": (("cell", "k"), a)}, {"reference_date": "2015-01-01"})
    before = path.read_bytes()
    with pytest.raises(ValueError):  # inconsistent dimension sizes: the write fails half-way
        write_restart(path, {}, {"x": (("cell", "k"), a), "y": (("cell",), np.zeros(5))}, {})
    assert path.read_bytes() == before  # the previous restart is intact
    assert not list(tmp_path.glob(".*tmp"))  # and no temporary file is left behind
    scalars, arrays, attrs = read_restart(path)
    assert scalars["next_time"] == 10800.0 and attrs["reference_date"] == "2015-01-01"
    np.testing.assert_array_equal(arrays["x"], a)
    (tmp_path / "bad.nc").write_bytes(b"not a netcdf file")
    with pytest.raises(InputError, match="is not a readable NetCDF file"):
        read_restart(tmp_path / "bad.nc")


# --- CF output -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("unit,conv", [("kgC m-2 s-1", "uptake_positive"), ("molCO2 m-2 s-1", "atmosphere_positive"),
                                       ("kgCO2 m-2 s-1", "uptake_positive")])
def test_flux_file_is_cf_compliant(tmp_path, unit, conv):
    lat = np.array([-10.0, 10.0])
    lon = np.array([0.0, 90.0, 180.0, 270.0])
    g = HostGridInfo("regular", lat, lon, np.array([[-20, 0], [0, 20.0]]),
                     np.array([[-45, 45], [45, 135], [135, 225], [225, 315.0]]))
    w = FluxFileWriter(tmp_path / "f.nc", g, np.array([0, 1, 1, 0.5, 0, 0, 1, 1.0]), np.full(8, 1e10),
                       flux_unit(unit), SignConvention.parse(conv), np.datetime64("2015-01-01T00:00:00"))
    w.append(0, 3600, {f: np.arange(8.0) for f in w.fields})
    assert not (tmp_path / "f.nc").exists()  # only a temporary file until closed
    w.close()
    out = cfchecks(tmp_path / "f.nc")
    assert "ERRORS detected: 0" in out, out
    with netCDF4.Dataset(tmp_path / "f.nc") as ds:
        assert ds["nee"].positive == ("down" if conv == "uptake_positive" else "up")
        assert ds["gpp"].cell_methods == "time: mean area: mean where land"
        assert ds.sign_convention == conv
        assert np.ma.is_masked(ds["gpp"][0, 0, 0])  # no land -> fill


def test_point_flux_file_is_cf_compliant(tmp_path):
    g = HostGridInfo("points", np.array([45.0, -3.0]), np.array([7.0, 120.0]), site_names=["IT-Ren", "ID-Pag"])
    w = FluxFileWriter(tmp_path / "p.nc", g, np.ones(2), None, flux_unit("gC m-2 d-1"),
                       SignConvention.UPTAKE_POSITIVE, np.datetime64("2001-01-01T00:00:00"))
    w.append(0, 31 * 86400, {f: np.ones(2) for f in w.fields})
    w.close()
    out = cfchecks(tmp_path / "p.nc")
    assert "ERRORS detected: 0" in out, out


def test_demo_forcing_is_cf_and_documented():
    out = cfchecks(DEMO)
    assert "ERRORS detected: 0" in out, out
    with netCDF4.Dataset(DEMO) as ds:
        assert "GLDAS" in ds.source and "Rodell" in ds.references
        assert "solar geometry" in ds.time_variation
        assert ds["tas"].dtype == np.float32 and ds["time"].units.startswith("seconds since")
        assert ds["landfrac"].shape == ds["cell_area"].shape == (len(ds.dimensions["lat"]), len(ds.dimensions["lon"]))
    assert DEMO.stat().st_size < 3e6


def test_open_fluxes_decodes_with_units_and_sign_convention(tmp_path):
    from tamrl_coupler.io import open_fluxes

    lat, lon = np.array([-10.0, 10.0]), np.array([0.0, 90.0])
    g = HostGridInfo("regular", lat, lon, np.array([[-20, 0], [0, 20.0]]), np.array([[-45, 45], [45, 135.0]]))
    w = FluxFileWriter(tmp_path / "f.nc", g, np.array([0.0, 1, 1, 0.5]), np.full(4, 1e10),
                       flux_unit("kgC m-2 s-1"), SignConvention.UPTAKE_POSITIVE, np.datetime64("2015-01-01T00:00:00"))
    rng = np.random.default_rng(3)
    gpp, reco = rng.random((2, 4)) * 1e-7
    w.append(0, 10800, {"gpp": gpp, "reco": reco, "nee": gpp - reco, "gpp_spread": 0.1 * gpp,
                        "reco_spread": 0.1 * reco, "nee_spread": 0.1 * gpp})
    w.close()
    ds = open_fluxes(tmp_path / "f.nc")
    assert np.isnan(ds["gpp"].values[0, 0, 0]) and ds["time"].dtype.kind == "M"  # off land NaN; datetimes
    assert ds["time_bnds"].values[0, 1] == np.datetime64("2015-01-01T03:00:00")
    assert ds["gpp"].attrs["units"] == "kg m-2 s-1" and ds["gpp"].attrs["flux_unit"] == "kgC m-2 s-1"
    assert ds["nee"].attrs["positive"] == "down" and ds["nee"].attrs["sign_convention"] == "uptake_positive"
    # converted on the way in: FLUXNET's convention in gC m-2 d-1, NEE = Reco - GPP exactly, attributes following
    fl = open_fluxes(tmp_path / "f.nc", convention="atmosphere_positive", unit="gC m-2 d-1")
    land = np.isfinite(fl["gpp"].values)
    np.testing.assert_allclose(fl["gpp"].values[land], (gpp * 86400 * 1000).reshape(2, 2)[land[0]], rtol=1e-14)
    np.testing.assert_array_equal(fl["nee"].values[land], (fl["reco"] - fl["gpp"]).values[land])
    assert fl["nee"].attrs["positive"] == "up" and fl["nee"].attrs["long_name"].endswith("(NEE = Reco - GPP)")
    assert fl["gpp"].attrs["units"] == "g m-2 d-1" and fl.attrs["sign_convention"] == "atmosphere_positive"
    assert fl["gpp"].attrs["cell_methods"] == "time: mean area: mean where land"  # the file's own attributes kept
    assert fl["gpp"].attrs["ancillary_variables"] == "gpp_spread"
    # a file that does not state its convention is refused, not guessed
    import xarray as xr

    xr.Dataset({"gpp": ("x", [1.0])}, attrs={"flux_unit": "gC m-2 d-1"}).to_netcdf(tmp_path / "bare.nc")
    with pytest.raises(InputError, match=r"bare.nc: global attribute 'sign_convention' is missing"):
        open_fluxes(tmp_path / "bare.nc")
