"""Products of a run's flux file: the flux file read back, the inversion prior (daily, 3-hourly, monthly; on the
host grid or remapped with its global total kept), the NEE map."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import yaml
from conftest import DEMO_CONFIG

from tamrl_coupler.constants import EARTH_RADIUS, M_C
from tamrl_coupler.errors import InputError
from tamrl_coupler.host.offline import run_offline
from tamrl_coupler.io.cfcheck import cfchecks
from tamrl_coupler.io.fluxfile import read_flux_file
from tamrl_coupler.products.maps import nee_map
from tamrl_coupler.products.prior import write_prior, write_prior_and_map
from tamrl_coupler.regrid import Grid
from tamrl_coupler.settings.run import PriorSection, load_run_config


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _demo_cfg(tmp_path, **changes):
    cfg = yaml.safe_load(DEMO_CONFIG.read_text())
    cfg["regrid"]["cache_dir"] = str(tmp_path / "weights")
    cfg["output"]["map"] = False
    cfg.update(changes)
    cfg = load_run_config(cfg)
    cfg.base_dir = str(DEMO_CONFIG.parent)
    return cfg


def test_prior_daily_means_in_mol_positive_up(tmp_path):
    cfg = _demo_cfg(tmp_path, end="2015-01-03T00:00:00")
    result = run_offline(cfg, tmp_path, progress=False)
    with netCDF4.Dataset(result.flux_file) as ds:
        nee = np.ma.filled(ds["nee"][:].astype(float), 0.0)  # kgC m-2 s-1, uptake positive
        lf, area = ds["landfrac"][:], ds["cell_area"][:]
    path = write_prior(result.flux_file, PriorSection(grid="host", frequency="daily"), tmp_path)
    report = cfchecks(path)
    assert "ERRORS detected: 0" in report, report
    with netCDF4.Dataset(path) as ds:
        prior = ds["nee"][:]
        assert ds["nee"].units == "mol m-2 s-1" and ds["nee"].positive == "up" and prior.shape[0] == 2
    day1 = -(nee[:8].mean(axis=0) * lf) / (M_C * 1e-3)  # kgC -> mol CO2, per m2 of cell, positive up
    np.testing.assert_allclose(prior[0], day1, rtol=1e-12, atol=1e-20)
    for freq, n_windows in (("3hourly", 16), ("monthly", 1)):
        with netCDF4.Dataset(write_prior(result.flux_file, PriorSection(frequency=freq), tmp_path)) as ds:
            assert ds["nee"].shape[0] == n_windows and ds["time_bnds"][-1, 1] == 2 * 86400
    coarse, png = write_prior_and_map(result.flux_file, PriorSection(grid="r36x18", frequency="daily",
                                                                     prefix="coarse"), tmp_path)
    assert png.name == "coarse_daily_map.png" and _is_png(png) and png.stat().st_size > 10_000
    with netCDF4.Dataset(coarse) as ds:
        g = Grid.from_name("r36x18")
        total_coarse = float((ds["nee"][0][:].ravel() * g.area * EARTH_RADIUS ** 2).sum())
    total_host = float((prior[0] * area).sum())
    assert total_coarse == pytest.approx(total_host, rel=2e-3)  # CDO areas vs exact lat-lon areas


def test_flux_file_reads_back_what_the_run_wrote(tmp_path):
    result = run_offline(_demo_cfg(tmp_path, end="2015-01-01T09:00:00"), tmp_path, progress=False)
    ff = read_flux_file(result.flux_file)
    assert list(ff.fields) == ["gpp", "reco", "nee", "gpp_spread", "reco_spread", "nee_spread"]
    assert ff.unit.name == "kgC m-2 s-1" and ff.convention.value == "uptake_positive"
    assert ff.grid.kind == "regular" and ff.fields["nee"].shape == (3, *ff.grid.shape)
    np.testing.assert_array_equal(ff.bounds, [[0, 10800], [10800, 21600], [21600, 32400]])
    assert str(ff.starts[1]) == "2015-01-01T03:00:00"
    land = ff.landfrac > 0
    nee, gpp, reco = (ff.fields[f][:, land] for f in ("nee", "gpp", "reco"))
    assert np.array_equal(nee, gpp - reco) and np.isnan(ff.fields["nee"][:, ~land]).all()
    png = nee_map(result.flux_file, tmp_path / "map.png")
    assert _is_png(png) and png.stat().st_size > 10_000
    assert [p.name for p in tmp_path.glob(".*.tmp")] == []  # written under a temporary name, renamed into place


def test_site_pictures_are_written(tmp_path):
    """Scatter per flux, error by IGBP class and the seasonal cycle per site, from (site, time) arrays."""
    from tamrl_coupler.products.figures import weighted_percentile
    from tamrl_coupler.products.siteplots import site_plots

    rng = np.random.default_rng(0)
    times = np.arange("2005-01", "2008-01", dtype="datetime64[M]")
    season = 5 + 4 * np.sin(2 * np.pi * (np.arange(times.size) % 12) / 12)
    obs = {"gpp": season + rng.normal(0, 1, (5, times.size)), "reco": 0.8 * season + rng.normal(0, 1, (5, times.size))}
    obs["nee"] = obs["gpp"] - obs["reco"]
    sim = {f: v + rng.normal(0, 0.5, v.shape) for f, v in obs.items()}
    obs["gpp"][0, :6] = np.nan  # missing months are left out, not drawn as zeros
    pngs = site_plots(tmp_path, "test", np.array(["A", "B", "C", "D", "E"]),
                      np.array(["ENF", "DBF", "ENF", "GRA", ""]), times, obs, sim, "uptake_positive", "test")
    assert [p.name for p in pngs] == ["test_scatter.png", "test_igbp_error.png", "test_seasonal_cycle.png"]
    for p in pngs:
        assert _is_png(p) and p.stat().st_size > 10_000, p
    # the colour scale of the maps: by area, so one large cell outweighs many small ones
    assert weighted_percentile(np.array([1.0, 100.0]), np.array([99.0, 1.0]), 90) == pytest.approx(1.0)


@pytest.mark.parametrize("field", ["nee", "nee_spread"])
def test_a_prior_never_writes_zero_for_a_missing_flux(tmp_path, field):
    """A flux file with a fill value (NaN when read) of NEE or its spread on a land cell: the prior refuses it,
    naming the record and the cell (it was written as a zero flux); off land the prior is 0 by definition."""
    result = run_offline(_demo_cfg(tmp_path, end="2015-01-01T06:00:00"), tmp_path, progress=False)
    with netCDF4.Dataset(result.flux_file, "a") as ds:
        land = np.argwhere(ds["landfrac"][:] > 0)[0]
        values = ds[field][:]
        values[1, land[0], land[1]] = np.ma.masked
        ds[field][:] = values
    with pytest.raises(InputError, match=rf"'{field}' is missing \(NaN or a fill value\) on a land cell \(record 1, "
                                         rf"cell \({land[0]}, {land[1]}\)"):
        write_prior(result.flux_file, PriorSection(grid="host", frequency="daily"), tmp_path)
