"""The global test bed (io/testbed.py, driver/testbed.py, `tamrl-coupler testbed`) on a sample of its cells: the
3-hourly forcing's days are the daily drivers, the driver file is what `predict` reads (with global totals), and the
coupled component on the 3-hourly forcing gives `predict`'s totals. Needs ../shared (CRU CL 1.0, GLDAS mask)."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import yaml
from conftest import shared_path

from tamrl_coupler.cli import main

EVERY = 400  # 44 cells of the 17 344


@pytest.fixture(scope="module")
def forcing(tmp_path_factory):
    shared = shared_path("data/cru_cl").parents[1]
    shared_path("data/gldas/GLDASp4_landmask_025d.nc4")
    out = tmp_path_factory.mktemp("testbed")
    assert main(["testbed", "--shared", str(shared), "--every", str(EVERY), "--years", "1", "--write-forcing",
                 "--subdaily-months", "1", "-o", str(out)]) == 0
    return out


def test_cells_and_forcing_files(forcing):
    from tamrl_coupler.host.testbed import load_cells

    cells = load_cells(shared_path("data/cru_cl").parents[1])
    assert cells.size == 17344  # the 1-degree cells with CRU data that the GLDAS mask calls land
    assert (cells.area * cells.landfrac).sum() / 1e12 == pytest.approx(133.35, abs=0.01)  # M km2
    with netCDF4.Dataset(forcing / "testbed_daily.nc") as d, \
            netCDF4.Dataset(forcing / "testbed_3hourly_200101.nc") as s:
        assert d["tmean"].shape[1] == 365 and s["tas"].shape[0] == 31 * 8
        tas = s["tas"][:].astype(np.float64).reshape(31, 8, -1).mean(axis=1) - 273.15
        assert np.allclose(tas, d["tmean"][:, :31].T, atol=2e-4)
        vpd = s["vpd"][:].astype(np.float64).reshape(31, 8, -1).mean(axis=1) / 100.0
        assert np.allclose(vpd, d["vpd"][:, :31].T, rtol=1e-5, atol=1e-5)
        sw = s["rsds"][:].astype(np.float64).reshape(31, 8, -1).mean(axis=1) * 0.0864
        assert np.allclose(sw, d["swdown"][:, :31].T, rtol=1e-5, atol=1e-5)
        pr = s["pr"][:].astype(np.float64).reshape(31, 8, -1).mean(axis=1) * 86400
        assert np.allclose(pr, d["precip"][:, :31].T, rtol=1e-5, atol=1e-6)
        assert d.getncattr("radiation_version").startswith("crad6190 ")


def test_component_totals_equal_predicts(forcing, tmp_path, capsys):
    """January through the coupled component (3-hourly steps, model cells = the test bed's cells) and through
    predict on the daily drivers: the same daily fluxes, so the same totals."""
    cfg = yaml.safe_load((forcing / "testbed_run.yaml").read_text())
    cfg["forcing"]["files"] = [str(forcing / "testbed_3hourly_200101.nc")]
    cfg["output"]["every"] = 1
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "run.yaml"), "-o", str(tmp_path / "run"), "--quiet"]) == 0
    with netCDF4.Dataset(tmp_path / "run" / "testbed_20010101T000000.nc") as ds:
        gpp = np.ma.filled(ds["gpp"][:], np.nan).reshape(31, 8, -1).mean(axis=1)  # gC m-2 d-1, daily means
        reco = np.ma.filled(ds["reco"][:], np.nan).reshape(31, 8, -1).mean(axis=1)
        comp_total = float(ds.getncattr("totals_monthly_gpp_PgC"))
    assert main(["predict", "--data", str(forcing / "testbed_daily.nc"), "--checkpoint", "daily", "-o",
                 str(tmp_path / "pred.nc"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "global totals per year" in printed
    with netCDF4.Dataset(tmp_path / "pred.nc") as ds:
        p_gpp, p_reco = ds["gpp"][:, :31].T, ds["reco"][:, :31].T
        pred_total = float(ds.getncattr("totals_monthly_gpp_PgC").split()[0])
        assert ds.getncattr("budget_mode") == "as_trained"
    assert np.allclose(gpp, p_gpp, rtol=2e-4, atol=2e-4)
    assert np.allclose(reco, p_reco, rtol=2e-4, atol=2e-4)
    assert comp_total == pytest.approx(pred_total, rel=1e-4)
