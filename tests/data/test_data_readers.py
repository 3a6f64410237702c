"""Readers on the real files: FluxVal (sign convention, Reco), FLUXNET2015 DD (units, aggregation, -9999)."""

from __future__ import annotations

import numpy as np
import pytest

from tamrl_coupler.data import read_fluxval
from tamrl_coupler.data.fluxnet import read_fluxnet, read_fluxnet_file
from tamrl_coupler.data.reader import read_dataset
from tamrl_coupler.data.sample import sample_path
from tamrl_coupler.errors import InputError

FLUXVAL = "data/fluxval/fluxval_monthly.nc"
AR1 = "data/fluxnet/FLX_US-AR1_FLUXNET2015_SUBSET_DD_2009-2012_1-3.csv"


def test_fluxval_reader_converts_sign_and_derives_reco(shared):
    import xarray as xr

    path = shared(FLUXVAL)
    d = read_fluxval(path)
    assert d.n_sites == 160 and len(d.time) == 192 and d.period == "monthly"
    with xr.open_dataset(path) as raw:
        gpp, nee_flx = raw["gpp"].values.astype(float), raw["nee"].values.astype(float)
    ok = np.isfinite(gpp)
    np.testing.assert_array_equal(d.targets["reco"][ok], (nee_flx + gpp)[ok])  # Reco = nee + gpp (FLUXNET)
    np.testing.assert_array_equal(d.targets["nee"][ok], (d.targets["gpp"] - d.targets["reco"])[ok])
    np.testing.assert_allclose(d.targets["nee"][ok], -nee_flx[ok], atol=1e-5)  # uptake positive inside
    assert np.isnan(d.targets["gpp"][~ok]).all()  # missing stays missing
    assert set(np.unique(d.drivers["igbp"][np.isfinite(d.drivers["igbp"])])) <= set(range(17))
    x = d.driver_array(["tmin", "tmax", "swdown", "vpd", "precip", "lai"], required={"tmin"})
    assert x.shape == (160, 192, 6) and np.isnan(x[..., 5]).mean() > 0.5  # LAI gaps kept as NaN


def test_shipped_sample_reads_and_keeps_attribution():
    d = read_dataset(sample_path())
    assert d.n_sites >= 8 and d.has_targets()
    assert "CC-BY-4.0" in d.attrs["license"] and "Pastorello" in d.attrs["source"]
    assert d.attrs["nee_convention"] == "atmosphere_positive"
    ok = np.isfinite(d.targets["gpp"])
    np.testing.assert_array_equal(d.targets["nee"][ok], (d.targets["gpp"] - d.targets["reco"])[ok])


def test_fluxnet_dd_reader_units_and_monthly_aggregation(shared):
    import pandas as pd

    path = shared(AR1)
    d = read_fluxnet(path)
    assert list(d.sites) == ["US-AR1"] and d.period == "monthly" and len(d.time) == 48
    raw = pd.read_csv(path, na_values=[-9999])
    jan = raw[(raw.TIMESTAMP >= 20090101) & (raw.TIMESTAMP <= 20090131)]
    assert d.drivers["swdown"][0, 0] == pytest.approx(jan.SW_IN_F.mean() * 0.0864, rel=1e-12)
    assert d.drivers["precip"][0, 0] == pytest.approx(jan.P_F.mean(), rel=1e-12)
    assert d.targets["gpp"][0, 0] == pytest.approx(jan.GPP_NT_VUT_REF.mean(), rel=1e-12)
    # FLUXNET NEE = Reco - GPP -> product NEE = GPP - Reco, and Reco matches the file's RECO_NT to its rounding
    assert d.targets["nee"][0, 0] == pytest.approx(-jan.NEE_VUT_REF.mean(), rel=1e-9)
    assert d.targets["reco"][0, 0] == pytest.approx(jan.RECO_NT_VUT_REF.mean(), abs=1e-4)
    ta = jan.TA_F.mean()
    assert d.drivers["tmin"][0, 0] < ta < d.drivers["tmax"][0, 0]
    assert 0.5 * (d.drivers["tmin"][0, 0] + d.drivers["tmax"][0, 0]) == pytest.approx(ta, abs=1e-9)
    assert "estimated diurnal range" in d.attrs["tmin_tmax"]
    daily = read_fluxnet_file(path, period="daily")
    assert len(daily.time) == 1461


def test_fluxnet_missing_values_and_coverage(shared, tmp_path):
    import pandas as pd

    raw = pd.read_csv(shared(AR1))
    raw.loc[(raw.TIMESTAMP >= 20090201) & (raw.TIMESTAMP < 20090220), "SW_IN_F"] = -9999  # 19 of 28 days gone
    raw.loc[(raw.TIMESTAMP >= 20090301) & (raw.TIMESTAMP < 20090305), "VPD_F"] = -9999  # 4 of 31 days gone
    path = tmp_path / "FLX_US-AR1_FLUXNET2015_SUBSET_DD_2009-2012_1-3.csv"
    raw.to_csv(path, index=False)
    d = read_fluxnet(path)
    assert np.isnan(d.drivers["swdown"][0, 1])  # too little of February left: missing, not zero
    mar = raw[(raw.TIMESTAMP >= 20090305) & (raw.TIMESTAMP <= 20090331)].VPD_F
    assert d.drivers["vpd"][0, 2] == pytest.approx(mar.mean(), rel=1e-12)  # -9999 days excluded from the mean
    bad = tmp_path / "FLX_US-XXX_FLUXNET2015_SUBSET_DD_2009-2012_1-3.csv"
    raw.drop(columns=["VPD_F"]).to_csv(bad, index=False)
    with pytest.raises(InputError, match="required column VPD_F is missing"):
        read_fluxnet(bad)
    with pytest.raises(InputError, match="not a FLUXNET2015"):
        read_fluxnet_file(tmp_path / "whatever.csv")


def test_fluxnet_half_hourly_gives_true_extremes(shared, tmp_path):
    """A half-hourly file made from the daily one's layout: daily min/max come from the records, units convert."""
    import pandas as pd

    rng = np.random.default_rng(0)
    n_days = 59  # January and February
    stamps = pd.date_range("2010-01-01", periods=n_days * 48, freq="30min")
    hours = stamps.hour + stamps.minute / 60
    ta = 5 + 6 * np.sin(2 * np.pi * (hours - 9) / 24) + rng.normal(0, 0.1, len(stamps))
    nee_umol = np.where((hours > 7) & (hours < 17), -5.0, 2.0)
    df = pd.DataFrame({"TIMESTAMP_START": stamps.strftime("%Y%m%d%H%M").astype(np.int64),
                       "TA_F": ta, "SW_IN_F": np.where((hours > 7) & (hours < 17), 400.0, 0.0), "SW_IN_POT": 500.0,
                       "VPD_F": 5.0, "P_F": 0.1, "NEE_VUT_REF": nee_umol, "NEE_VUT_REF_QC": 0,
                       "GPP_NT_VUT_REF": np.where((hours > 7) & (hours < 17), 7.0, 0.0)})
    path = tmp_path / "FLX_DE-Xyz_FLUXNET2015_FULLSET_HH_2010-2010_1-3.csv"
    df.to_csv(path, index=False)
    d = read_fluxnet(path)
    assert len(d.time) == 2
    expected_tmin = pd.Series(ta, index=stamps).resample("D").min().iloc[:31].mean()
    assert d.drivers["tmin"][0, 0] == pytest.approx(expected_tmin, rel=1e-12)
    assert d.drivers["precip"][0, 0] == pytest.approx(0.1 * 48)
    assert d.drivers["swdown"][0, 0] == pytest.approx(np.mean(df.SW_IN_F) * 0.0864)
    assert d.targets["gpp"][0, 0] == pytest.approx(df.GPP_NT_VUT_REF.mean() * 12.011e-6 * 86400, rel=1e-12)
    assert "sub-daily" in d.attrs["tmin_tmax"]


def test_fluxnet_directory_of_sites_on_a_common_time_axis(shared, tmp_path):
    import shutil

    import pandas as pd

    src = shared(AR1)
    shutil.copy(src, tmp_path / src.name)
    raw = pd.read_csv(src)
    raw[raw.TIMESTAMP >= 20110101].to_csv(tmp_path / "FLX_US-AR2_FLUXNET2015_SUBSET_DD_2011-2012_1-3.csv", index=False)
    d = read_fluxnet(tmp_path, igbp={"US-AR1": "GRA"})
    assert list(d.sites) == ["US-AR1", "US-AR2"] and len(d.time) == 48
    assert np.isnan(d.drivers["tmin"][1, :24]).all() and np.isfinite(d.drivers["tmin"][1, 24:]).all()
    np.testing.assert_array_equal(d.targets["gpp"][1, 24:], d.targets["gpp"][0, 24:])
    assert d.drivers["igbp"][0, 0] == 9 and np.isnan(d.drivers["igbp"][1, 0])  # GRA; unknown stays missing


def test_ameriflux_base_file_nee_only(tmp_path):
    import pandas as pd

    stamps = pd.date_range("2015-01-01", "2015-02-28 23:30", freq="30min")
    hours = stamps.hour + stamps.minute / 60
    df = pd.DataFrame({"TIMESTAMP_START": stamps.strftime("%Y%m%d%H%M").astype(np.int64),
                       "TIMESTAMP_END": (stamps + pd.Timedelta("30min")).strftime("%Y%m%d%H%M").astype(np.int64),
                       "FC_1_1_1": np.where((hours > 8) & (hours < 16), -6.0, 3.0), "TA_1_1_1": 10 + np.sin(hours),
                       "SW_IN_1_1_1": 200.0, "VPD_PI_1_1_1": 7.0, "P_1_1_1": 0.0})
    df.loc[5, "TA_1_1_1"] = -9999
    path = tmp_path / "AMF_US-Abc_BASE_HH_1-5.csv"
    path.write_text("# Site: US-Abc\n# Version: 1-5\n" + df.to_csv(index=False))
    d = read_fluxnet(path)
    assert list(d.sites) == ["US-Abc"] and len(d.time) == 2
    assert np.isnan(d.targets["gpp"]).all() and np.isnan(d.targets["reco"]).all()
    fc = df["FC_1_1_1"].mean() * 12.011e-6 * 86400
    assert d.targets["nee"][0, 0] == pytest.approx(-fc, rel=1e-12)  # FC up-positive -> product NEE uptake-positive
    assert d.drivers["swdown"][0, 0] == pytest.approx(200 * 0.0864)
    assert np.isfinite(d.drivers["tmin"][0, 0])  # one -9999 record: that day still has >= 80 % of its records
