"""Physics plausibility of the imports (component/plausibility.py): metadata that lies while every value stays inside
its physical range is refused, naming field, cell, step and the likely mix-up; plausible forcing passes."""

from __future__ import annotations

import numpy as np
import pytest

from tamrl_coupler.component.clock import Clock
from tamrl_coupler.component.plausibility import Plausibility
from tamrl_coupler.component.validation import CellLocator
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.solar import ToaInsolation

CLOCK = Clock("2015-01-01", "daily")


def _cells():
    """A 5-degree global grid's cell centres (every cell land)."""
    lat, lon = np.meshgrid(np.arange(-87.5, 90, 5.0), np.arange(-177.5, 180, 5.0), indexing="ij")
    lat, lon = lat.ravel(), lon.ravel()
    return Plausibility(CellLocator(0, np.arange(lat.size), lat, lon), np.ones(lat.size, bool)), lat, lon


def _clear_sky(lat, lon, t: int, dt: int, tau: float = 0.7) -> np.ndarray:
    """``tau`` of the step's top-of-atmosphere insolation: a plausible shortwave for the step [t, t + dt)."""
    out = np.zeros(lat.size)
    ToaInsolation(lat, lon).integral(CLOCK.datetime(t), dt, out)
    return tau * out / dt


def _step(check: Plausibility, rows: dict, t: int, dt: int, first: bool = False) -> None:
    info = CLOCK.step(t, dt)
    check.check(rows, info, f"step {t // dt} ({info.start})", first)
    check.commit(rows, info)


@pytest.mark.parametrize("dt", [1800, 3600, 10800, 86400])
def test_plausible_forcing_passes_a_whole_day(dt):
    """Clear and overcast skies, a warm afternoon and a cold night: nothing refused, at any step length."""
    check, lat, lon = _cells()
    tas_day = 275.0 + 12.0 * np.cos(np.deg2rad(lat))
    for k in range(86400 // dt):
        t = 86400 * 10 + k * dt
        tau = 0.75 if k % 3 else 0.15  # some overcast steps
        hour = (t % 86400) / 3600.0 + lon / 15.0
        tas = tas_day + 8.0 * np.sin(np.pi * (hour - 9.0) / 12.0)
        _step(check, {"rsds": _clear_sky(lat, lon, t, dt, tau), "tas": tas}, t, dt)


def test_shortwave_in_mj_labelled_w_m2_is_refused():
    """MJ m-2 d-1 read as W m-2 (11.6 times too small everywhere): refused, naming the unit mix-up; the run's first
    step is exempt (a host may hand over radiation it has not computed yet)."""
    check, lat, lon = _cells()
    t, dt = 86400 * 10 + 10800, 10800
    mj = _clear_sky(lat, lon, t, dt) * 0.0864  # W m-2 -> MJ m-2 d-1, labelled W m-2
    _step(check, {"rsds": mj}, t, dt, first=True)
    mj = _clear_sky(lat, lon, t + dt, dt) * 0.0864
    with pytest.raises(InputError, match=r"forcing field 'rsds' at step .*all \d+ land cells of rank 0 in high sun "
                                         r".*likely MJ m-2 d-1"):
        _step(check, {"rsds": mj}, t + dt, dt)
    zeros = np.zeros(lat.size)
    with pytest.raises(InputError, match="likely MJ m-2 d-1"):  # no shortwave at noon anywhere: not a sky
        _step(check, {"rsds": zeros}, t + dt, dt)


@pytest.mark.parametrize("shift_h", [6, -6])
def test_shortwave_from_another_time_of_day_is_refused(shift_h):
    """Forcing whose time axis (or bounds) is 6 h off: the shortwave of 6 h later or earlier exceeds the insolation
    of the step at the cells where the sun rises or sets; refused, naming the cell and the step."""
    check, lat, lon = _cells()
    t, dt = 86400 * 10 + 3 * 10800, 10800
    shifted = _clear_sky(lat, lon, t + shift_h * 3600, dt)
    with pytest.raises(InputError, match=r"forcing field 'rsds' at step \d+ .*rank 0, cell \d+ \(global index\) at lat "
                                         r".* above the insolation at the top of the atmosphere.*shifted by hours"):
        _step(check, {"rsds": shifted}, t, dt)


def test_shortwave_of_the_neighbouring_step_or_a_longer_record_passes():
    """A host that labels a step by its end (its shortwave is the previous step's mean), or that holds 3- or
    6-hourly forcing over hourly steps, stays inside the bound."""
    check, lat, lon = _cells()
    for dt in (3600, 10800):
        for k in range(1, 86400 // dt):
            t = 86400 * 10 + k * dt
            _step(check, {"rsds": _clear_sky(lat, lon, t - dt, dt, 0.8)}, t, dt)
    for record in (10800, 21600):
        check.pad = max(check.pad, record)  # what the offline driver tells the component about its records
        for k in range(24):
            t = 86400 * 11 + k * 3600
            start = t - t % record
            _step(check, {"rsds": _clear_sky(lat, lon, start, record, 0.8)}, t, 3600)


def test_a_temperature_day_spanning_more_than_45_k_is_refused():
    """Steps from different seasons in one day (a time axis in the wrong units): refused at the step that makes the
    day's range implausible, naming the cell and both extremes; a new day starts afresh; NaN (missing) is skipped."""
    check, lat, lon = _cells()
    n, dt = lat.size, 10800
    t0 = 86400 * 20
    _step(check, {"tas": np.full(n, 300.0)}, t0, dt)
    tas = np.full(n, 290.0)
    tas[5] = np.nan
    _step(check, {"tas": tas}, t0 + dt, dt)
    cold = np.full(n, 290.0)
    cold[17] = 250.0
    with pytest.raises(InputError, match=r"forcing field 'tas' at step .*cell 17 \(global index\).* spans 50 K .*"
                                         r"between 290 and 300 K"):
        _step(check, {"tas": cold}, t0 + 2 * dt, dt)
    _step(check, {"tas": np.full(n, 250.0)}, t0 + 86400, dt)  # the next day


def test_plausibility_is_refused_through_the_component_and_changes_nothing(tmp_path):
    """Through CouplingComponent: the step is refused before it changes anything; the same step with the right
    shortwave passes; ``forcing.check_plausibility: false`` turns the checks off."""
    import yaml
    from conftest import DEMO, DEMO_CONFIG
    from mpi4py import MPI

    from tamrl_coupler.component import CouplingComponent, HostCells
    from tamrl_coupler.io.forcing import ForcingReader
    from tamrl_coupler.io.hostgrid import read_host_grid

    cfg = yaml.safe_load(DEMO_CONFIG.read_text())
    cfg["regrid"]["cache_dir"] = str(tmp_path / "weights")
    host = read_host_grid(DEMO)
    reader = ForcingReader([DEMO], {}, ["tas", "huss", "ps", "rsds", "pr"])
    comp = CouplingComponent(cfg, MPI.COMM_WORLD,
                             HostCells(np.arange(host.size), host.lat, host.lon, host.area, host.landfrac))
    bufs = {f: reader.read(f, 0) for f in reader.fields}
    for f, b in bufs.items():
        comp.register_import(f, b)
    comp.run_step(0, 10800)
    for f, b in bufs.items():
        b[:] = reader.read(f, 1)
    good = bufs["rsds"].copy()
    bufs["rsds"][:] = reader.read("rsds", 3)  # 9 h later's shortwave
    with pytest.raises(InputError, match="above the insolation at the top of the atmosphere"):
        comp.run_step(10800, 10800)
    assert comp.next_time == 10800 and comp.n_steps == 1
    bufs["rsds"][:] = good
    comp.run_step(10800, 10800)
    cfg["forcing"]["check_plausibility"] = False
    off = CouplingComponent(cfg, MPI.COMM_WORLD,
                            HostCells(np.arange(host.size), host.lat, host.lon, host.area, host.landfrac))
    assert off.imports.plausibility is None


def test_the_shortwave_bound_is_the_highest_insolation_in_the_window():
    """The angle-addition bound equals the highest top-of-atmosphere insolation sampled every minute across the
    widened window (declination and the equation of time taken at the step's middle: within 1 %)."""
    from tamrl_coupler.component import plausibility as pl
    from tamrl_coupler.physics.solar import SOLAR_CONSTANT, cos_zenith, eccentricity_factor

    check, lat, lon = _cells()
    for t, dt in ((86400 * 40 + 3 * 10800, 10800), (86400 * 180 + 5 * 3600, 3600), (86400 * 300, 86400)):
        info = CLOCK.step(t, dt)
        sw = np.zeros(lat.size)
        check._shortwave(check._take(sw), info, "s", True)
        bound = (check._wide - pl.ABS_MARGIN) / pl.REL_MARGIN
        pad = min(check.pad, (86400 - dt) / 2)
        minutes = np.arange(-pad, dt + pad + 1, 60.0)
        when = info.start + minutes.astype("timedelta64[s]")
        doy = (when[len(when) // 2].astype("datetime64[D]") - when[0].astype("datetime64[Y]")).astype(int) + 1
        sampled = np.max([cos_zenith(lat, lon, w) for w in when], axis=0) * SOLAR_CONSTANT * \
            eccentricity_factor(doy)
        np.testing.assert_allclose(bound, sampled, rtol=0.01, atol=5.0)
