"""`predict --budget` on a gridded site-layout file (the FluxVal sample given cell areas and land fractions): GPP
untouched, NEE = GPP - Reco exact, each year's global sink what was asked from the second year on, the totals
printed and written, the mode in the metadata; a global sink without areas is refused."""

from __future__ import annotations

import shutil

import netCDF4
import numpy as np
import pytest
from conftest import SAMPLE

from tamrl_coupler.cli import main


@pytest.fixture(scope="module")
def gridded(tmp_path_factory):
    d = tmp_path_factory.mktemp("gridded")
    path = d / "sample_cells.nc"
    shutil.copy(SAMPLE, path)
    with netCDF4.Dataset(path, "a") as ds:
        n = ds.dimensions["site"].size
        a = ds.createVariable("cell_area", "f8", ("site",))
        a.units = "m2"
        a[:] = np.linspace(1e10, 3e10, n)
        lf = ds.createVariable("landfrac", "f8", ("site",))
        lf.units = "1"
        lf[:] = np.linspace(0.5, 1.0, n)
    return path


def _read(path):
    with netCDF4.Dataset(path) as ds:
        return ({k: np.ma.filled(ds[k][:].astype(np.float64), np.nan) for k in ("gpp", "reco", "nee")},
                {k: str(ds.getncattr(k)) for k in ds.ncattrs()})


def test_predict_budget_target_on_cells(gridded, tmp_path, capsys):
    assert main(["predict", "--data", str(gridded), "--checkpoint", "monthly", "-o", str(tmp_path / "raw.nc"),
                 "--quiet"]) == 0
    assert main(["predict", "--data", str(gridded), "--checkpoint", "monthly", "-o", str(tmp_path / "t.nc"),
                 "--quiet", "--budget", "target", "--sink-pgc", "0.01", "--budget-prior", "none"]) == 0
    out = capsys.readouterr().out
    assert "global totals per year" in out  # a result table: printed even with --quiet
    raw, raw_attrs = _read(tmp_path / "raw.nc")
    t, attrs = _read(tmp_path / "t.nc")
    assert raw_attrs["budget_mode"] == "as_trained" and attrs["budget_mode"] == "target"
    assert np.array_equal(t["gpp"], raw["gpp"], equal_nan=True)
    assert np.array_equal(t["nee"], t["gpp"] - t["reco"], equal_nan=True)
    annual = [float(v) for v in attrs["totals_annual_nee_PgC"].split()]
    assert len(annual) == 16
    # from the second year on, the year's NEE is the sink of the trailing year's GPP: close to 0.01 PgC
    assert np.allclose(annual[1:], 0.01, rtol=0.25), annual
    assert abs(float(raw_attrs["totals_annual_nee_PgC"].split()[5]) - 0.01) > 0.01  # as trained it is not


def test_global_sink_needs_cell_areas(tmp_path, capsys):
    assert main(["predict", "--data", str(SAMPLE), "--checkpoint", "monthly", "-o", str(tmp_path / "x.nc"),
                 "--quiet", "--budget", "target", "--sink-pgc", "1"]) == 1
    assert "no cell areas" in capsys.readouterr().err
