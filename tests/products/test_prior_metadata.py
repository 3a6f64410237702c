"""What a prior file says about itself: the uncertainty's meaning and error-correlation model, the checkpoint's
identity, cell area and land fraction, ACDD licence/dates/history; it passes the CF checker and open_fluxes reads it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import netCDF4
import numpy as np
import pytest
import yaml
from conftest import DEMO_CONFIG

from tamrl_coupler.constants import EARTH_RADIUS
from tamrl_coupler.host.offline import run_offline
from tamrl_coupler.io import open_fluxes
from tamrl_coupler.io.cfcheck import cfchecks
from tamrl_coupler.model.checkpoint import shipped_checkpoint
from tamrl_coupler.products.prior import write_prior
from tamrl_coupler.products.prior_metadata import CHECKPOINTS, ERROR_CORRELATIONS, window_mean_sd_factor
from tamrl_coupler.regrid import Grid
from tamrl_coupler.settings.run import PriorSection, load_run_config

SHIPPED_FIT = CHECKPOINTS / ERROR_CORRELATIONS["tamrl_daily.npz"]


@pytest.fixture(scope="module")
def demo_fluxes(tmp_path_factory):
    """Two days of the demo (daily checkpoint, 3-hourly steps), the flux file it wrote."""
    tmp = tmp_path_factory.mktemp("demo")
    cfg = yaml.safe_load(DEMO_CONFIG.read_text())
    cfg["regrid"]["cache_dir"] = str(tmp / "weights")
    cfg["output"]["map"] = False
    cfg["end"] = "2015-01-03T00:00:00"
    cfg = load_run_config(cfg)
    cfg.base_dir = str(DEMO_CONFIG.parent)
    return run_offline(cfg, tmp, progress=False).flux_file


def _attrs(var) -> dict:
    return {k: var.getncattr(k) for k in var.ncattrs()}


def test_prior_file_states_its_uncertainty_checkpoint_and_licence(demo_fluxes, tmp_path):
    path = write_prior(demo_fluxes, PriorSection(grid="host", frequency="daily"), tmp_path,
                       attributes={"budget_mode": "as_trained"})
    report = cfchecks(path)
    assert "ERRORS detected: 0" in report, report
    ckpt = shipped_checkpoint("daily")
    with netCDF4.Dataset(path) as ds, netCDF4.Dataset(demo_fluxes) as flux:
        g = _attrs(ds)
        assert "ACDD-1.3" in g["Conventions"] and g["license"].startswith("CC-BY-4.0")
        created = dt.datetime.fromisoformat(g["date_created"].replace("Z", "+00:00"))
        assert abs((dt.datetime.now(dt.timezone.utc) - created).total_seconds()) < 600
        assert "tamrl-coupler" in g["history"] and demo_fluxes.name in g["history"]
        assert g["checkpoint"] == "tamrl_daily.npz"
        assert g["checkpoint_file_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
        assert len(g["checkpoint_sha256"]) == 64 and g["checkpoint_period"] == "daily"
        assert g["time_coverage_start"] == "2015-01-01T00:00:00Z" and g["time_coverage_end"] == "2015-01-03T00:00:00Z"
        assert g["budget_mode"] == "as_trained"  # the hook other modules add their attributes through
        assert g["sign_convention"] == "atmosphere_positive" and g["flux_unit"] == "molCO2 m-2 s-1"
        u = _attrs(ds["nee_uncertainty"])
        assert "calibrated predictive standard deviation of the daily flux at an unseen site" in u["long_name"]
        assert "ensemble spread" not in u["long_name"]
        assert ds["nee"].ancillary_variables == "nee_uncertainty"
        assert ds["nee"].cell_measures == "area: cell_area"
        # cell area and land fraction: the host grid's, as the flux file has them
        np.testing.assert_array_equal(ds["landfrac"][:], flux["landfrac"][:])
        np.testing.assert_array_equal(ds["cell_area"][:], flux["cell_area"][:])
        assert ds["landfrac"].standard_name == "land_area_fraction" and ds["cell_area"].units == "m2"
        if SHIPPED_FIT.exists():
            fit = json.loads(SHIPPED_FIT.read_text())
            assert u["temporal_correlation_efolding_days"] == fit["temporal_efolding_days"]
            assert u["spatial_correlation_length_km"] == fit["spatial_length_km"]
            lo, hi = u["spatial_correlation_length_km_ci90"]
            assert lo <= u["spatial_correlation_length_km"] <= hi
            assert u["error_correlation_tower_pairs"] == fit["tower_pairs"]
            assert 0.0 <= u["temporal_correlation_persistent_share"] + u["temporal_correlation_decaying_share"] <= 1


def test_remapped_prior_carries_target_areas_and_land_fraction(demo_fluxes, tmp_path):
    path = write_prior(demo_fluxes, PriorSection(grid="r36x18", frequency="monthly"), tmp_path)
    assert "ERRORS detected: 0" in cfchecks(path)
    g = Grid.from_name("r36x18")
    with netCDF4.Dataset(path) as ds, netCDF4.Dataset(demo_fluxes) as flux:
        np.testing.assert_allclose(ds["cell_area"][:].ravel(), g.area * EARTH_RADIUS**2, rtol=1e-12)
        land_host = float((flux["landfrac"][:] * flux["cell_area"][:]).sum())
        land_target = float((ds["landfrac"][:] * ds["cell_area"][:]).sum())
        assert land_target == pytest.approx(land_host, rel=2e-3)  # conservative: the land area is kept
        assert ds["landfrac"][:].max() <= 1.0 + 1e-12
        if SHIPPED_FIT.exists():
            f = ds["nee_uncertainty"].monthly_mean_sd_factor
            assert f == pytest.approx(window_mean_sd_factor(json.loads(SHIPPED_FIT.read_text()), 30), abs=1e-3)


def test_open_fluxes_reads_a_prior_and_converts_it(demo_fluxes, tmp_path):
    path = write_prior(demo_fluxes, PriorSection(grid="host", frequency="daily"), tmp_path)
    raw = open_fluxes(path)
    assert raw["nee"].attrs["sign_convention"] == "atmosphere_positive"
    assert raw["nee_uncertainty"].attrs["units"] == "mol m-2 s-1"
    g = open_fluxes(path, convention="uptake_positive", unit="gC m-2 d-1")
    factor = 12.011 * 86400.0  # mol CO2 -> g C, per second -> per day
    np.testing.assert_allclose(g["nee"].values, -raw["nee"].values * factor, rtol=1e-9)
    np.testing.assert_allclose(g["nee_uncertainty"].values, raw["nee_uncertainty"].values * factor, rtol=1e-9)
    assert (g["nee_uncertainty"].values >= 0).all()  # an uncertainty never changes sign
    assert g["nee_uncertainty"].attrs["units"] == "g m-2 d-1"
    assert g["nee_uncertainty"].attrs["standard_name"] == g["nee"].attrs["standard_name"] + " standard_error"
    assert g["nee"].attrs["standard_name"].startswith("surface_net_downward_mass_flux_of_carbon_dioxide")
    assert g["landfrac"].attrs["standard_name"] == "land_area_fraction"


def test_prior_from_an_older_flux_file_names_the_config_checkpoint(demo_fluxes, tmp_path):
    old = tmp_path / "old.nc"
    old.write_bytes(demo_fluxes.read_bytes())
    with netCDF4.Dataset(old, "a") as ds:
        for k in [k for k in ds.ncattrs() if k.startswith("checkpoint") or k == "spread_meaning"]:
            ds.delncattr(k)
    unknown = write_prior(old, PriorSection(grid="host", frequency="daily", prefix="unknown"), tmp_path)
    with netCDF4.Dataset(unknown) as ds:
        assert ds.checkpoint.startswith("unknown")
        assert "does not say what it is" in ds["nee_uncertainty"].long_name
    from tamrl_coupler.commands.prior import config_checkpoint

    cfg = load_run_config(DEMO_CONFIG)
    named = write_prior(old, PriorSection(grid="host", frequency="daily", prefix="named"), tmp_path,
                        provenance=config_checkpoint(cfg))
    with netCDF4.Dataset(named) as ds:
        assert ds.checkpoint == "tamrl_daily.npz" and "run config" in ds.checkpoint_source


def test_window_mean_factor_by_hand():
    white = {"temporal_efolding_days": 10.0, "temporal_persistent_share": 0.0, "temporal_decaying_share": 0.0}
    assert window_mean_sd_factor(white, 30) == pytest.approx(1 / np.sqrt(30))
    frozen = {"temporal_efolding_days": 1e12, "temporal_persistent_share": 0.0, "temporal_decaying_share": 1.0}
    assert window_mean_sd_factor(frozen, 30) == pytest.approx(1.0)
    ar = {"temporal_efolding_days": 5.0, "temporal_persistent_share": 0.2, "temporal_decaying_share": 0.5}
    lag = np.abs(np.subtract.outer(np.arange(3), np.arange(3)))
    rho = np.where(lag == 0, 1.0, 0.2 + 0.5 * np.exp(-lag / 5.0))
    assert window_mean_sd_factor(ar, 3) == pytest.approx(np.sqrt(rho.sum()) / 3)


def test_point_prior_passes_the_cf_checker(tmp_path):
    """A prior on a point set (towers): CF timeSeries, cdm_data_type Station, the checkpoint named."""
    from tamrl_coupler.io.cfcoords import HostGridInfo
    from tamrl_coupler.io.fluxfile import FluxFileWriter
    from tamrl_coupler.physics.carbon import SignConvention
    from tamrl_coupler.physics.units import flux_unit

    grid = HostGridInfo("points", np.array([50.9, 46.0, -2.1]), np.array([13.6, 11.0, -54.9]),
                        site_names=["DE-Tha", "IT-Ren", "BR-Sa3"])
    w = FluxFileWriter(tmp_path / "f.nc", grid, np.ones(3), None, flux_unit("gC m-2 d-1"),
                       SignConvention.UPTAKE_POSITIVE, np.datetime64("2015-01-01T00:00:00"),
                       attrs={"checkpoint": "tamrl_daily.npz", "spread_meaning": "calibrated predictive standard "
                              "deviation of the daily flux at an unseen site"})
    for day in range(2):
        vals = {f: np.full(3, 1.0 + day) for f in ("gpp", "reco", "gpp_spread", "reco_spread", "nee_spread")}
        vals["nee"] = vals["gpp"] - vals["reco"] * 0.5
        w.append(day * 86400.0, (day + 1) * 86400.0, vals)
    flux = w.close()
    path = write_prior(flux, PriorSection(grid="host", frequency="daily"), tmp_path)
    report = cfchecks(path)
    assert "ERRORS detected: 0" in report, report
    with netCDF4.Dataset(path) as ds:
        assert ds.cdm_data_type == "Station" and ds.featureType == "timeSeries" and ds.checkpoint == "tamrl_daily.npz"
        assert "cell_area" not in ds.variables and "nee_uncertainty" in ds.variables
