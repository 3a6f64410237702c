"""Clock, device selection, decomposition, forcing validation, run config, forcing reader, restart and CF files."""

from __future__ import annotations

import logging
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from tamrl_coupler.component.clock import Clock
from tamrl_coupler.component.config import load_run_config, resolve_path
from tamrl_coupler.component.decomposition import BlockDecomposition
from tamrl_coupler.component.devices import choose_device, select_device
from tamrl_coupler.component.fields import CellLocator, ForcingValidator, import_name, missing_imports
from tamrl_coupler.component.schedule import EvaluationSchedule
from tamrl_coupler.config import ConfigError
from tamrl_coupler.errors import InputError
from tamrl_coupler.io.cfcheck import cfchecks
from tamrl_coupler.io.forcing import ForcingReader, expand_files
from tamrl_coupler.io.output import FluxFileWriter, HostGridInfo
from tamrl_coupler.io.restart import read_restart, write_restart
from tamrl_coupler.physics.carbon import SignConvention
from tamrl_coupler.physics.units import flux_unit

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "tamrl_coupler" / "sample_data" / "demo_forcing.nc"


# --- clock ---------------------------------------------------------------------------------------------------------
def test_clock_steps_days_and_months():
    c = Clock("2015-01-01", "monthly")
    s = c.step(0, 10800)
    assert not s.ends_day and not s.ends_period and s.period_seconds == 31 * 86400
    last = c.step(31 * 86400 - 10800, 10800)
    assert last.ends_day and last.ends_period and last.elapsed == 31 * 86400
    feb = c.step(31 * 86400, 31 * 86400 - 3 * 86400)  # February 2015 as one whole-period step
    assert feb.ends_period and feb.period_seconds == 28 * 86400
    assert c.step_length(31 * 86400, "period") == 28 * 86400
    with pytest.raises(InputError, match="dividing a day"):
        c.step(0, 7000)
    with pytest.raises(InputError, match="not a multiple of the step length"):
        c.step(3600, 10800)
    with pytest.raises(InputError, match="00:00 UTC"):
        Clock("2015-01-01T06:00", "monthly")
    d = Clock("2015-01-01", "daily")
    assert d.step(86400 - 1800, 1800).ends_period


# --- model evaluation schedule (model.update_interval) -------------------------------------------------------------
def _evaluated_steps(interval, dt: int, n_steps: int, start: int = 0, period: str = "monthly") -> list[int]:
    """Indices of the steps that evaluate the ensemble, as the component decides them."""
    clock, sched = Clock("2015-01-01", period), EvaluationSchedule(interval)
    have, out = False, []
    for k in range(n_steps):
        info = clock.step(start + k * dt, dt)
        if sched.due(info, have):
            out.append(k)
            have = True
        if info.ends_period:
            have = False
    return out


def test_evaluation_schedule_intervals_and_period_ends():
    jan = 31 * 8  # 3-hourly steps in January
    # one day: every step of the period's first day, then the step ending each day (the last one ends the period)
    daily = _evaluated_steps(86400, 10800, jan + 10)
    assert daily == list(range(8)) + [8 * d + 7 for d in range(1, 31)] + list(range(jan, jan + 8))  # Feb: 8
    # six hours: the first interval's steps, then every second 3-hourly step; an interval not a multiple of the
    # step: where a boundary is reached or crossed
    assert _evaluated_steps(21600, 10800, 8) == [0, 1, 3, 5, 7]
    assert _evaluated_steps(14400, 10800, 8) == [0, 1, 2, 3, 5, 6, 7]  # 4 h boundaries at 4, 8, 12 ... 24 h
    # intervals not longer than the step: every step (the behaviour before update_interval existed)
    assert _evaluated_steps(3600, 10800, 10) == list(range(10))
    assert _evaluated_steps(10800, 10800, 10) == list(range(10))
    # a run starting inside a period evaluates at once, then at the interval ends
    assert _evaluated_steps(86400, 10800, 10, start=5 * 86400 + 3 * 10800) == [0, 4]
    # daily model period with hourly steps and a 6-hour interval
    assert _evaluated_steps(21600, 3600, 48, period="daily") == [*range(6), 11, 17, 23, *range(24, 30), 35, 41, 47]
    for bad in (7000, 0, True, "period"):
        with pytest.raises(ValueError, match="update_interval"):
            EvaluationSchedule(bad)


# --- devices -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("local_rank,n_cuda,expected", [(0, 0, "cpu"), (3, 0, "cpu"), (0, 4, "cuda:0"),
                                                        (5, 4, "cuda:1"), (3, 2, "cuda:1"), (7, 8, "cuda:7")])
def test_device_choice_node_local_rank_modulo_devices(local_rank, n_cuda, expected):
    assert choose_device("auto", local_rank, n_cuda).device == expected


def test_device_overrides_and_errors():
    assert choose_device("cpu", 0, 4).device == "cpu"
    assert choose_device("cuda:2", 0, 4).device == "cuda:2"
    fallback = choose_device("cuda:1", 0, 0)
    assert fallback.device == "cpu" and "falling back to CPU" in fallback.reason
    with pytest.raises(InputError, match="cuda:5 requested but only 2"):
        choose_device("cuda:5", 0, 2)
    with pytest.raises(InputError, match="device.kind"):
        choose_device("tpu", 0, 0)


def test_select_device_logs_one_line_per_rank(caplog):
    from mpi4py import MPI

    with caplog.at_level(logging.INFO, logger="tamrl_coupler.component"):
        choice = select_device(MPI.COMM_WORLD, "auto")
    lines = [r.getMessage() for r in caplog.records if "device" in r.getMessage()]
    assert len(lines) == 1 and "rank 0 (node-local 0 of 1)" in lines[0] and choice.device in lines[0]


# --- decomposition -------------------------------------------------------------------------------------------------
def test_block_decomposition_is_a_partition_of_whole_blocks():
    for n_ranks in (1, 2, 3, 7):
        d = BlockDecomposition(1000, 64, n_ranks)
        ranges = [d.cell_range(r) for r in range(n_ranks)]
        assert ranges[0][0] == 0 and ranges[-1][1] == 1000
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
        assert all(r[0] % 64 == 0 for r in ranges)  # blocks never split between ranks
        assert d.counts().sum() == 1000


# --- validation ----------------------------------------------------------------------------------------------------
def _validator(policy="error"):
    loc = CellLocator(rank=2, global_index=np.array([10, 11, 12, 13]), lat=np.array([1.0, 2, 3, 4]),
                      lon=np.array([5.0, 6, 7, 8]))
    return ForcingValidator(["tas", "pr", "ps"], np.array([True, True, True, False]), loc, policy)


@pytest.mark.parametrize("value,what", [(np.nan, "NaN"), (np.inf, "infinite"), (-9999.0, "a fill value"),
                                        (1e36, "a fill value"), (15.0, "degC was given where K is declared")])
def test_validation_errors_name_field_rank_cell_step(value, what):
    v = _validator()
    x = np.array([280.0, value, 281.0, np.nan])  # the ocean cell (inactive) may hold anything
    with pytest.raises(InputError) as err:
        v.check("tas", x, "step 7 (2015-01-01T21:00:00)")
    msg = str(err.value)
    for part in ("'tas'", "step 7", "rank 2", "cell 11 (global index)", "lat 2.000", "lon 6.000", what):
        assert part in msg, (part, msg)


def test_validation_hints_units_and_persist_policy():
    v = _validator()
    with pytest.raises(InputError, match="hPa was given"):
        v.check("ps", np.array([1000.0, 1e5, 1e5, 0]), "step 0")
    with pytest.raises(InputError, match="mm/day"):
        v.check("pr", np.array([3.0, 0, 0, 0]), "step 0")
    p = _validator("persist")
    x = np.array([280.0, 281.0, 282.0, 0.0])
    p.check("tas", x, "step 0")
    y = np.array([np.nan, 285.0, -9999.0, 0.0])
    p.check("tas", y, "step 1")
    np.testing.assert_array_equal(y[:3], [280.0, 285.0, 282.0])
    fresh = _validator("persist")
    with pytest.raises(InputError, match="no earlier valid value"):
        fresh.check("tas", np.array([np.nan, 1, 1, 1.0]) + 280, "step 0")


def test_import_names_and_required_groups():
    assert import_name("air_temperature") == "tas"
    assert import_name("precipitation_flux") == "pr"
    with pytest.raises(InputError, match="import field 'tair' is not known"):
        import_name("tair")
    assert missing_imports({"tas", "huss", "ps", "rsds", "pr"}) == []
    assert missing_imports({"tasmin", "tasmax", "vpd", "rsds", "pr"}) == []
    assert missing_imports({"tas", "rsds", "pr"}) == ["huss+ps or vpd"]


# --- config --------------------------------------------------------------------------------------------------------
def test_run_config_errors_name_the_key(tmp_path):
    base = {"reference_date": "2015-01-01", "start": "2015-01-01", "end": "2015-01-02", "coupling_step": 3600,
            "host": {"grid": "r72x36"}}
    assert load_run_config(base).coupling_step == 3600
    with pytest.raises(ConfigError, match="coupling_step"):
        load_run_config({**base, "coupling_step": 7000})
    with pytest.raises(ConfigError, match="exports.unit"):
        load_run_config({**base, "exports": {"unit": "tons"}})
    with pytest.raises(ConfigError, match="forcing.fill_policy"):
        load_run_config({**base, "forcing": {"files": ["x"], "fill_policy": "zero"}})
    with pytest.raises(ConfigError, match=r"model: unknown key\(s\) \['grdi'\]"):
        load_run_config({**base, "model": {"grdi": "r90x45"}})
    assert load_run_config(base).model.update_interval == 86400  # the default: one evaluation a day
    with pytest.raises(ConfigError, match=r"model.update_interval: 7000 s must .* dividing a day"):
        load_run_config({**base, "model": {"update_interval": 7000}})
    with pytest.raises(ConfigError, match=r"model.update_interval: expected an integer, got 'weekly'"):
        load_run_config({**base, "model": {"update_interval": "weekly"}})
    assert resolve_path("package://sample_data/demo_forcing.nc", None) == DEMO
    assert load_run_config(REPO / "configs" / "demo.yaml").model.grid == "r90x45"


def test_demo_config_shipped_in_package_is_the_repository_one():
    assert (REPO / "configs" / "demo.yaml").read_text() == \
        (REPO / "tamrl_coupler" / "configs" / "demo.yaml").read_text()


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


# --- progress output -----------------------------------------------------------------------------------------------
def test_progress_lines_when_not_a_terminal_and_bar_on_one():
    import io

    from tamrl_coupler.driver.progress import LineProgress, make_progress

    log = io.StringIO()  # a log file / CI pipe: not a terminal
    p = make_progress(280, "coupling steps", "auto", stream=log)
    assert isinstance(p, LineProgress)
    for _ in range(280):
        p.update(1)
    p.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in log.getvalue()
    assert lines[0].startswith("coupling steps: 28/280 steps (10 %)") and lines[-1].startswith(
        "coupling steps: 280/280 steps (100 %)")
    stopped = io.StringIO()  # a run stopped part-way reports where it got to when closed
    p = make_progress(100, "coupling steps", "lines", stream=stopped)
    for _ in range(25):
        p.update(1)
    p.close()
    assert [ln.split(" steps (")[0] for ln in stopped.getvalue().splitlines()] == [
        "coupling steps: 10/100", "coupling steps: 20/100", "coupling steps: 25/100"]

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = make_progress(5, "coupling steps", "auto", stream=Terminal())
    assert type(bar).__name__ == "tqdm"
    bar.close()
    assert make_progress(5, mode="none") is None
    with pytest.raises(ValueError, match="progress mode 'fancy'"):
        make_progress(5, mode="fancy")
