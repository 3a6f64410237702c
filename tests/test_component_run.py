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

from tamrl_coupler.component.config import load_run_config
from tamrl_coupler.errors import InputError

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "tamrl_coupler" / "sample_data" / "demo_forcing.nc"


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _demo_cfg(tmp_path: Path, **changes):
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["regrid"]["cache_dir"] = str(tmp_path / "weights")
    cfg["output"]["map"] = False
    for k, v in changes.items():
        cfg[k] = v
    cfg = load_run_config(cfg)
    cfg.base_dir = str(REPO / "configs")
    return cfg


def _component(tmp_path, **changes):
    from tamrl_coupler.component import CouplingComponent, HostCells
    from tamrl_coupler.io.hostgrid import read_host_grid

    cfg = _demo_cfg(tmp_path, **changes)
    host = read_host_grid(DEMO)
    cells = HostCells(np.arange(host.size), host.lat, host.lon, host.area, host.landfrac)
    return CouplingComponent(cfg, MPI.COMM_WORLD, cells), host


def test_registration_and_step_errors(tmp_path):
    comp, host = _component(tmp_path)
    assert "air_temperature" in comp.import_names and comp.export_names[:3] == ["gpp", "reco", "nee"]
    with pytest.raises(InputError, match="import field 'Tair' is not known"):
        comp.register_import("Tair", np.zeros(host.size))
    with pytest.raises(InputError, match=f"expected a 1-D float64 array of {host.size} values"):
        comp.register_import("tas", np.zeros(host.size - 1))
    with pytest.raises(InputError, match="float64"):
        comp.register_export("gpp", np.zeros(host.size, dtype=np.float32))
    comp.register_import("air_temperature", np.full(host.size, 280.0))
    with pytest.raises(InputError, match=r"required import field\(s\) not registered: huss\+ps or vpd; rsds; pr"):
        comp.run_step(0, 10800)
    for name, value in (("huss", 0.005), ("ps", 1e5), ("rsds", 100.0), ("pr", 1e-5)):
        comp.register_import(name, np.full(host.size, value))
    comp.run_step(0, 10800)
    with pytest.raises(InputError, match="expects the step at 10800 s"):
        comp.run_step(21600, 10800)
    with pytest.raises(InputError, match="dividing a day"):
        comp.run_step(10800, 7000)
    comp.finalize()
    with pytest.raises(InputError, match="after finalize"):
        comp.run_step(10800, 10800)


def test_nan_forcing_is_named_and_earlier_output_is_not_damaged(tmp_path):
    from tamrl_coupler.driver.offline import run_offline

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
    """Daily coupling steps through January: the sum of step fluxes on every model cell equals the model's
    prediction for the month from the complete January drivers, to rounding."""
    comp, host = _component(tmp_path, coupling_step=86400)
    from tamrl_coupler.io.forcing import ForcingReader

    reader = ForcingReader([DEMO], {}, ["tas", "huss", "ps", "rsds", "pr"])
    bufs = {f: np.zeros(host.size) for f in reader.fields}
    for f, b in bufs.items():
        comp.register_import(f, b)
    emitted = np.zeros((2, comp.n_model))
    for day in range(31):
        t = day * 86400
        for f, b in bufs.items():
            b[:] = reader.read(f, reader.record_for(comp.clock.datetime(t)))
        comp.run_step(t, 86400)
        emitted += comp.step_model[:2] * 1.0  # one day at a rate in gC m-2 d-1
    predicted = np.vstack([comp.period_fluxes["gpp"], comp.period_fluxes["reco"]]) * 31
    np.testing.assert_allclose(emitted, predicted, rtol=1e-13, atol=1e-13)
    assert comp.acc.elapsed == 0.0  # the period was committed and a new one begun
    totals = comp.global_totals()
    for k, (model, hostv) in totals.items():
        assert abs(hostv - model) <= 1e-12 * abs(model), (k, model, hostv)


def test_sites_run_reproduces_model_predict(shared, tmp_path):
    """The FluxVal sites as a monthly point-set host give exactly the model's own predictions."""
    import torch

    from tamrl_coupler.data.fluxval import read_fluxval
    from tamrl_coupler.driver.offline import run_offline
    from tamrl_coupler.driver.scoring import read_simulated
    from tamrl_coupler.model import load_checkpoint

    fluxval = shared("data/fluxval/fluxval_monthly.nc")
    ds = read_fluxval(fluxval)
    sites = [str(s) for s in ds.sites[::8]]  # 20 sites, all 192 months
    cfg = yaml.safe_load((REPO / "configs" / "sites.yaml").read_text())
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
    assert (tmp_path / "sites_scatter.png").stat().st_size > 10_000


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


def test_prior_daily_means_in_mol_positive_up(tmp_path):
    from tamrl_coupler.component.config import PriorSection
    from tamrl_coupler.driver.offline import run_offline
    from tamrl_coupler.io.prior import write_prior

    cfg = _demo_cfg(tmp_path, end="2015-01-03T00:00:00")
    result = run_offline(cfg, tmp_path, progress=False)
    with netCDF4.Dataset(result.flux_file) as ds:
        nee = np.ma.filled(ds["nee"][:].astype(float), 0.0)  # kgC m-2 s-1, uptake positive
        lf, area = ds["landfrac"][:], ds["cell_area"][:]
    path = write_prior(result.flux_file, PriorSection(grid="host", frequency="daily"), tmp_path)
    from tamrl_coupler.io.cfcheck import cfchecks

    report = cfchecks(path)
    assert "ERRORS detected: 0" in report, report
    with netCDF4.Dataset(path) as ds:
        prior = ds["nee"][:]
        assert ds["nee"].units == "mol m-2 s-1" and ds["nee"].positive == "up" and prior.shape[0] == 2
    day1 = -(nee[:8].mean(axis=0) * lf) / 12.011e-3  # kgC -> mol CO2, per m2 of cell, positive up
    np.testing.assert_allclose(prior[0], day1, rtol=1e-12, atol=1e-20)
    for freq, n_windows in (("3hourly", 16), ("monthly", 1)):
        with netCDF4.Dataset(write_prior(result.flux_file, PriorSection(frequency=freq), tmp_path)) as ds:
            assert ds["nee"].shape[0] == n_windows and ds["time_bnds"][-1, 1] == 2 * 86400
    coarse = write_prior(result.flux_file, PriorSection(grid="r36x18", frequency="daily", prefix="coarse"), tmp_path)
    with netCDF4.Dataset(coarse) as ds:
        from tamrl_coupler.regrid import Grid

        g = Grid.from_name("r36x18")
        total_coarse = float((ds["nee"][0][:].ravel() * g.area * 6371007.181 ** 2).sum())
    total_host = float((prior[0] * area).sum())
    assert total_coarse == pytest.approx(total_host, rel=2e-3)  # CDO areas vs exact lat-lon areas
