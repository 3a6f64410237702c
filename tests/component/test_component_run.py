"""The component in one process: registration errors, bad forcing, exact period totals through the whole
component, the FluxVal sites run reproducing the model's own prediction, and the demo from the package."""

from __future__ import annotations

import os
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from tamrl_coupler.errors import InputError
from tamrl_coupler.settings.run import load_run_config

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "tamrl_coupler" / "sample_data" / "demo_forcing.nc"


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _demo_cfg(tmp_path: Path, **changes):
    cfg = yaml.safe_load((REPO / "configs" / "run" / "demo.yaml").read_text())
    cfg["regrid"]["cache_dir"] = str(tmp_path / "weights")
    cfg["output"]["map"] = False
    for k, v in changes.items():
        cfg[k] = v
    cfg = load_run_config(cfg)
    cfg.base_dir = str(REPO / "configs" / "run")
    return cfg


def _component(tmp_path, **changes):
    from tamrl_coupler.component import CouplingComponent, HostCells
    from tamrl_coupler.io.hostgrid import read_host_grid

    cfg = _demo_cfg(tmp_path, **changes)
    host = read_host_grid(DEMO)
    cells = HostCells(np.arange(host.size), host.lat, host.lon, host.area, host.landfrac)
    return CouplingComponent(cfg, MPI.COMM_WORLD, cells), host


def test_registration_and_step_errors(tmp_path):
    # constant forcing (100 W m-2 of shortwave at midnight, where the sun is down) is implausible by design here
    forcing = {**yaml.safe_load((REPO / "configs" / "run" / "demo.yaml").read_text())["forcing"],
               "check_plausibility": False}
    comp, host = _component(tmp_path, forcing=forcing)
    assert "air_temperature" in comp.import_names and comp.export_names[:3] == ["gpp", "reco", "nee"]
    with pytest.raises(InputError, match="import field 'Tair' is not known"):
        comp.register_import("Tair", np.zeros(host.size))
    with pytest.raises(InputError, match=f"expected a 1-D float64 array of {host.size} values"):
        comp.register_import("tas", np.zeros(host.size - 1))
    with pytest.raises(InputError, match="float64"):
        comp.register_export("gpp", np.zeros(host.size, dtype=np.float32))
    comp.register_import("air_temperature", np.full(host.size, 280.0))
    with pytest.raises(InputError, match=r"required import field\(s\) not registered: vpd or tas\+huss\+ps or "
                                         r"tas\+tdps or tas\+hurs; rsds; pr"):
        comp.run_step(0, 10800)
    for name, value in (("huss", 0.005), ("ps", 1e5), ("rsds", 100.0), ("pr", 1e-5)):
        comp.register_import(name, np.full(host.size, value))
    comp.run_step(0, 10800)
    with pytest.raises(InputError, match="expects the step at 10800 s"):
        comp.run_step(21600, 10800)
    with pytest.raises(InputError, match="dividing a day"):
        comp.run_step(10800, 7000)
    comp.finalise()
    with pytest.raises(InputError, match="after finalise"):
        comp.run_step(10800, 10800)


def test_nan_forcing_is_named_and_earlier_output_is_not_damaged(tmp_path):
    from tamrl_coupler.host.offline import run_offline

    bad = tmp_path / "bad.nc"
    with netCDF4.Dataset(DEMO) as src, netCDF4.Dataset(bad, "w") as dst:
        for d, dim in src.dimensions.items():
            dst.createDimension(d, None if dim.isunlimited() else len(dim))
        for name, v in src.variables.items():
            o = dst.createVariable(name, v.dtype, v.dimensions, **({"fill_value": v._FillValue}
                                                                     if hasattr(v, "_FillValue") else {}))
            o.setncatts({k: v.getncattr(k) for k in v.ncattrs() if k != "_FillValue"})
            o[:] = v[:8] if "time" in v.dimensions else v[:]
        lf = src["landfrac"][:]
        j, i = np.argwhere(lf > 0.5)[0]
        tas = dst["tas"][:]
        tas[3, j, i] = np.nan
        dst["tas"][:] = tas
        lat, lon = float(src["lat"][j]), float(src["lon"][i])
    cfg = _demo_cfg(tmp_path, forcing={"files": [str(bad)]}, end="2015-01-02T00:00:00")
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / "tamrl_fluxes_20150101T000000.nc"
    earlier.write_bytes(b"an earlier result")
    with pytest.raises(InputError) as err:
        run_offline(cfg, out, progress=False)
    msg = str(err.value)
    gidx = j * lf.shape[1] + i
    for part in ("forcing field 'tas'", "step 3 (2015-01-01T09:00:00", "rank 0", f"cell {gidx} (global index)",
                 f"lat {lat:.3f}", f"lon {lon:.3f}", "is NaN"):
        assert part in msg, (part, msg)
    assert earlier.read_bytes() == b"an earlier result"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_period_totals_exact_through_the_component(tmp_path):
    """Daily coupling steps through January with the monthly model: the sum of step fluxes on every model cell
    equals the model's prediction for the month from the complete January drivers, to rounding."""
    # the demo's 00 UTC record as each day's mean: above the day's insolation where it is noon (what the
    # plausibility checks refuse; not what this test is about)
    forcing = {**yaml.safe_load((REPO / "configs" / "run" / "demo.yaml").read_text())["forcing"],
               "check_plausibility": False}
    comp, host = _component(tmp_path, coupling_step=86400, model={"grid": "r90x45", "checkpoint": "monthly"},
                            forcing=forcing)
    from tamrl_coupler.io.forcing import ForcingReader

    reader = ForcingReader([DEMO], {}, ["tas", "huss", "ps", "rsds", "pr"])
    bufs = {f: np.zeros(host.size) for f in reader.fields}
    for f, b in bufs.items():
        comp.register_import(f, b)
    emitted = np.zeros((2, comp.geometry.n_model))
    for day in range(31):
        t = day * 86400
        for f, b in bufs.items():
            b[:] = reader.read(f, reader.record_for(comp.clock.datetime(t)))
        comp.run_step(t, 86400)
        rows = comp.model_stage.step_rows
        emitted += np.vstack([rows["gpp"], rows["reco"]]) * 1.0  # one day at a rate in gC m-2 d-1
    predicted = np.vstack([comp.model_stage.estimate["gpp"], comp.model_stage.estimate["reco"]]) * 31
    np.testing.assert_allclose(emitted, predicted, rtol=1e-13, atol=1e-13)
    assert comp.model_stage.acc.elapsed == 0.0  # the period was committed and a new one begun
    totals = comp.global_totals()
    for k, (model, hostv) in totals.items():
        assert abs(hostv - model) <= 1e-12 * abs(model), (k, model, hostv)


def test_daily_model_day_totals_exact_through_the_component(tmp_path):
    """The demo's daily model, 3-hourly steps through two days (the first from a cold start, evaluated at every
    step; the second every 6 h from the last 24 hours): on every model cell the day's step fluxes add up to the
    day's final estimate, to rounding, and NEE = GPP - Reco on every host cell."""
    comp, host = _component(tmp_path, model={"grid": "r90x45", "checkpoint": "daily", "update_interval": 21600})
    from tamrl_coupler.io.forcing import ForcingReader

    reader = ForcingReader([DEMO], {}, ["tas", "huss", "ps", "rsds", "pr"])
    bufs = {f: np.zeros(host.size) for f in reader.fields}
    for f, b in bufs.items():
        comp.register_import(f, b)
    exports = {f: np.zeros(host.size) for f in comp.export_names}
    for f, b in exports.items():
        comp.register_export(f, b)
    for day in range(2):
        emitted = np.zeros((2, comp.geometry.n_model))
        for k in range(8):
            t = day * 86400 + k * 10800
            for f, b in bufs.items():
                b[:] = reader.read(f, reader.record_for(comp.clock.datetime(t)))
            comp.run_step(t, 10800)
            rows = comp.model_stage.step_rows
            emitted += np.vstack([rows["gpp"], rows["reco"]]) * (10800 / 86400)  # rates in gC m-2 d-1
            assert np.array_equal(exports["nee"], exports["gpp"] - exports["reco"])
        predicted = np.vstack([comp.model_stage.estimate["gpp"], comp.model_stage.estimate["reco"]])
        np.testing.assert_allclose(emitted, predicted, rtol=1e-13, atol=1e-13)
        assert comp.model_stage.acc.elapsed == 0.0  # the day was committed


def test_period_totals_exact_when_the_estimate_is_reused(tmp_path):
    """3-hourly steps through January, the ensemble evaluated once a day (and at every step of the first day):
    the other steps reuse the estimate and only follow their own light and temperature; the month's total on every
    model cell is still exactly the final prediction, and the balance identity exact on every host cell."""
    comp, host = _component(tmp_path, model={"grid": "r90x45", "update_interval": 86400})
    from tamrl_coupler.io.forcing import ForcingReader

    reader = ForcingReader([DEMO], {}, ["tas", "huss", "ps", "rsds", "pr"])
    bufs = {f: np.zeros(host.size) for f in reader.fields}
    for f, b in bufs.items():
        comp.register_import(f, b)
    out = {f: np.zeros(host.size) for f in ("gpp", "reco", "nee")}
    for f, b in out.items():
        comp.register_export(f, b)
    emitted = np.zeros((2, comp.geometry.n_model))
    gpp_steps = []
    land = host.landfrac > 0
    for k in range(31 * 8):
        t = k * 10800
        for f, b in bufs.items():
            b[:] = reader.read(f, reader.record_for(comp.clock.datetime(t)))
        comp.run_step(t, 10800)
        emitted += np.vstack([comp.model_stage.step_rows["gpp"], comp.model_stage.step_rows["reco"]]) * (10800 / 86400)
        gpp_steps.append(comp.model_stage.step_rows["gpp"].copy())
        assert np.array_equal(out["nee"][land], out["gpp"][land] - out["reco"][land])
    assert comp.model_stage.n_evaluations == 8 + 30
    predicted = np.vstack([comp.model_stage.estimate["gpp"], comp.model_stage.estimate["reco"]]) * 31
    np.testing.assert_allclose(emitted, predicted, rtol=1e-13, atol=1e-13)
    gpp_steps = np.array(gpp_steps)
    # day 2 evaluates only at its last step: its other steps still have a diurnal cycle
    assert (np.ptp(gpp_steps[8:15], axis=0) > 0).sum() > 0.5 * comp.geometry.n_model


def test_sites_run_reproduces_model_predict(shared, tmp_path):
    """The FluxVal sites as a monthly point-set host give exactly the model's own predictions."""
    import torch

    from tamrl_coupler.data.fluxval import read_fluxval
    from tamrl_coupler.host.offline import run_offline
    from tamrl_coupler.model import load_checkpoint
    from tamrl_coupler.products.scoring import read_simulated

    fluxval = shared("data/fluxval/fluxval_monthly.nc")
    ds = read_fluxval(fluxval)
    sites = [str(s) for s in ds.sites[::8]]  # 20 sites, all 192 months
    cfg = yaml.safe_load((REPO / "configs" / "run" / "sites.yaml").read_text())
    cfg["forcing"]["files"] = [str(fluxval)]
    cfg["forcing"]["sites"] = sites
    cfg["output"]["score"] = str(fluxval)
    result = run_offline(load_run_config(cfg), tmp_path, progress=False)
    names, months, sim = read_simulated(result.flux_file)
    assert list(names) == sites and len(months) == ds.time.size
    sub = ds.subset(np.array([list(ds.sites).index(s) for s in sites]))
    ens = load_checkpoint()
    ref = ens.predict_sequence(torch.from_numpy(sub.driver_array(ens.meta.driver_names)), first_period=sub.time[0],
                               lat=sub.lat)
    for f in ("gpp", "reco", "nee"):
        assert np.array_equal(sim[f], getattr(ref, f).numpy()), f
    scores = (tmp_path / "sites_scores.md").read_text()
    assert "## Per biome (IGBP)" in scores and sites[0] in scores
    for kind in ("scatter", "igbp_error", "seasonal_cycle"):
        assert (tmp_path / f"sites_{kind}.png").stat().st_size > 10_000, kind


def test_demo_command_from_the_package(tmp_path, monkeypatch):
    """`tamrl-coupler demo` finds its config and forcing inside the package, wherever it is run from."""
    from tamrl_coupler.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAMRL_REGRID_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["demo", "--out", "demo_out", "--steps", "3", "--quiet"]) == 0
    files = sorted(p.name for p in (tmp_path / "demo_out").iterdir())
    assert "tamrl_fluxes_20150101T000000.nc" in files and "tamrl_fluxes_nee_map.png" in files
    with netCDF4.Dataset(tmp_path / "demo_out" / "tamrl_fluxes_20150101T000000.nc") as ds:
        assert ds["nee"].shape[0] == 3 and ds["nee"].positive == "down"
    assert os.path.getsize(tmp_path / "demo_out" / "tamrl_fluxes_nee_map.png") > 10_000


def _step_demo(comp, host, n_steps: int) -> dict[str, np.ndarray]:
    from tamrl_coupler.io.forcing import ForcingReader

    reader = ForcingReader([DEMO], {}, ["tas", "huss", "ps", "rsds", "pr"])
    bufs = {f: np.zeros(host.size) for f in reader.fields}
    for f, b in bufs.items():
        comp.register_import(f, b)
    out = {f: np.zeros(host.size) for f in comp.export_names}
    for f, b in out.items():
        comp.register_export(f, b)
    for i in range(n_steps):
        for f, b in bufs.items():
            b[:] = reader.read(f, i)
        comp.run_step(i * 10800, 10800)
    return out


def test_export_units_and_sign_convention(tmp_path):
    from tamrl_coupler.physics.units import M_C, M_CO2

    comp, host = _component(tmp_path)
    ref = _step_demo(comp, host, 3)
    comp2, _ = _component(tmp_path, exports={"unit": "kgCO2 m-2 s-1", "sign_convention": "atmosphere_positive"})
    co2 = _step_demo(comp2, host, 3)
    land = host.landfrac > 0
    assert np.array_equal(co2["nee"][land], co2["reco"][land] - co2["gpp"][land])  # FLUXNET's way round, exactly
    np.testing.assert_allclose(co2["gpp"][land], ref["gpp"][land] * M_CO2 / M_C, rtol=1e-14)
    np.testing.assert_allclose(co2["nee"][land], -ref["nee"][land] * M_CO2 / M_C, rtol=1e-12,
                               atol=1e-12 * np.abs(co2["gpp"]).max())
    assert (ref["gpp_spread"][land] >= 0).all() and ref["gpp_spread"][land].max() > 0


def test_restart_from_another_grid_is_refused(tmp_path):
    comp, host = _component(tmp_path)
    _step_demo(comp, host, 2)
    path = comp.write_restart(tmp_path / "r.nc")
    from tamrl_coupler.component import CouplingComponent, HostCells

    cells = HostCells(np.arange(host.size), host.lat, host.lon, host.area, host.landfrac)
    with pytest.raises(InputError, match="written for .* model cells on grid 'r90x45'; this run has .* 'r72x36'"):
        CouplingComponent(_demo_cfg(tmp_path, model={"grid": "r72x36", "checkpoint": "daily"}), MPI.COMM_WORLD,
                          cells, restart=path)
    again = CouplingComponent(_demo_cfg(tmp_path), MPI.COMM_WORLD, cells, restart=path)
    assert again.next_time == 2 * 10800 and again.n_steps == 2


def test_host_cells_must_match_the_host_grid(tmp_path):
    """A host passing 1-based indices (a Fortran habit) is told so instead of being regridded wrongly."""
    from tamrl_coupler.component import CouplingComponent, HostCells
    from tamrl_coupler.io.hostgrid import read_host_grid

    host = read_host_grid(DEMO)
    n = host.size - 1
    cells = HostCells(np.arange(1, n + 1), host.lat[:n], host.lon[:n], host.area[:n], host.landfrac[:n])
    with pytest.raises(InputError, match=r"host cell 1 \(global index, 0-based\) is at lat -57.5000, lon -177.5000 "
                                         r"but host grid .* lon -172.5000"):
        CouplingComponent(_demo_cfg(tmp_path), MPI.COMM_WORLD, cells)


def test_restart_carries_the_estimate_and_format_1_still_reads(tmp_path):
    """The restart holds the period estimate between evaluations; a format-1 restart (none) is read when unverified
    restarts are allowed explicitly, and its first step evaluates."""
    from tamrl_coupler.component import CouplingComponent, HostCells

    comp, host = _component(tmp_path)
    _step_demo(comp, host, 2)
    assert comp.model_stage.have_estimate and comp.model_stage.n_evaluations == 2  # the first day evaluates every step
    path = comp.write_restart(tmp_path / "r.nc")
    cells = HostCells(np.arange(host.size), host.lat, host.lon, host.area, host.landfrac)
    again = CouplingComponent(_demo_cfg(tmp_path), MPI.COMM_WORLD, cells, restart=path)
    assert again.model_stage.have_estimate and again.model_stage.n_evaluations == 2
    for k, v in comp.model_stage.estimate.items():
        assert np.array_equal(again.model_stage.estimate[k], v), k
    old = tmp_path / "format1.nc"
    with netCDF4.Dataset(path) as src, netCDF4.Dataset(old, "w") as dst:
        dst.setncatts({k: src.getncattr(k) for k in src.ncattrs()})
        dst.restart_format_version = 1
        for d, dim in src.dimensions.items():
            dst.createDimension(d, len(dim))
        for name, v in src.variables.items():
            if name.startswith("estimate_") or name in ("scalar_have_estimate", "scalar_n_evaluations"):
                continue
            dst.createVariable(name, v.dtype, v.dimensions)[...] = v[...]
    with pytest.raises(InputError, match="format version 1, written before restarts were sealed"):
        CouplingComponent(_demo_cfg(tmp_path), MPI.COMM_WORLD, cells, restart=old)
    v1 = CouplingComponent(_demo_cfg(tmp_path), MPI.COMM_WORLD, cells, restart=old, allow_unverified=True)
    assert not v1.model_stage.have_estimate and v1.next_time == 2 * 10800


BLOCK_SIZE_RTOL = 1.0e-6  # of the largest |GPP|: measured 1.1e-7 (daily model) and 4.7e-8 (monthly), demo, 8 steps


def test_block_size_changes_only_the_float32_rounding(tmp_path, checkpoint="daily"):
    """``model.block_size`` is a tuning knob: the networks run in float32 on blocks of cells, and the BLAS kernel
    chosen for a block's shape rounds differently, so block size 1 and the default (256) may differ in the last
    bits -- never by more than BLOCK_SIZE_RTOL of the largest flux (docs/reliability.md). The same block size gives
    the same bits on any number of ranks (test_component_mpi.py); NEE = GPP - Reco holds exactly in both."""
    out = {}
    for block in (1, 256):
        comp, host = _component(tmp_path, model={"grid": "r90x45", "checkpoint": checkpoint, "block_size": block,
                                                 "update_interval": 21600})
        steps = []
        exports = _step_demo(comp, host, 0)
        from tamrl_coupler.io.forcing import ForcingReader

        reader = ForcingReader([DEMO], {}, ["tas", "huss", "ps", "rsds", "pr"])
        for k in range(3):
            for f in reader.fields:
                comp.imports.arrays[f][:] = reader.read(f, k)
            comp.run_step(k * 10800, 10800)
            assert np.array_equal(exports["nee"], exports["gpp"] - exports["reco"])
            steps.append(np.stack([exports["gpp"], exports["reco"]]))
        out[block] = np.array(steps)
    a, b = out[1], out[256]
    assert np.array_equal(np.isnan(a), np.isnan(b))
    scale = np.nanmax(np.abs(b))
    diff = np.nanmax(np.abs(a - b))
    assert diff <= BLOCK_SIZE_RTOL * scale, (diff, scale, diff / scale)
