"""The daily tower reader: both file families, the site table, QC filter and weight, drivers-only files."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from tamrl_coupler.data.fluxnet_daily import read_fluxnet_daily
from tamrl_coupler.data.reader import read_dataset
from tamrl_coupler.errors import InputError

DAILY = "data/fluxnet_daily"
FULLSET = "FLX_AU-Ade_FLUXNET2015_FULLSET_DD_2007-2009.csv"  # tower met, QC column
ERAMET = "FLX_BE-Bra_ICOSWW2020_ERAMET_DD_1996-2020.csv"  # ICOS: ERA met, no QC published


@pytest.fixture(scope="module")
def daily(shared):
    return shared(DAILY)


def _pick(daily, tmp_path, *names):
    for n in (*names, "sites.csv"):
        shutil.copy(daily / n, tmp_path / n)
    return tmp_path


def test_both_families_units_sign_and_site_table(daily, tmp_path):
    folder = _pick(daily, tmp_path, FULLSET, ERAMET)
    d = read_dataset(folder, period="daily")
    assert d.period == "daily" and list(d.sites) == ["AU-Ade", "BE-Bra"]
    assert d.time[0] == np.datetime64("1996-01-01") and d.time[-1] == np.datetime64("2020-12-31")
    raw = pd.read_csv(folder / FULLSET, na_values=[-9999])
    j = int((np.datetime64("2007-01-01") - d.time[0]).astype("timedelta64[D]").astype(int))
    n = len(raw)
    np.testing.assert_array_equal(d.drivers["tmean"][0, j:j + n], raw["TA_F"].to_numpy())
    np.testing.assert_allclose(d.drivers["swdown"][0, j:j + n], raw["SW_IN_F"].to_numpy() * 0.0864)
    assert np.isnan(d.drivers["tmean"][0, :j]).all()  # before the record: missing, never zero
    ok = raw["NEE_VUT_REF_QC"].to_numpy() >= 0.5
    got = d.targets["nee"][0, j:j + n]
    np.testing.assert_array_equal(got[ok], -raw["NEE_VUT_REF"].to_numpy()[ok])  # product NEE = -FLUXNET NEE
    assert np.isnan(got[~ok]).all()  # QC below 0.5 filtered
    np.testing.assert_array_equal(d.targets["reco"][0, j:j + n][ok], raw["RECO_NT_VUT_REF"].to_numpy()[ok])
    table = pd.read_csv(folder / "sites.csv").set_index("SITE_ID")
    assert d.lat[1] == table.loc["BE-Bra", "lat"] and d.igbp[1] == table.loc["BE-Bra", "IGBP"]
    assert np.isfinite(d.drivers["igbp"][1]).all()
    icos = pd.read_csv(folder / ERAMET, na_values=[-9999])
    present = icos["GPP_NT_VUT_REF"].notna() & icos["NEE_VUT_REF"].notna()
    assert np.isfinite(d.targets["gpp"][1]).sum() == present.sum()  # no QC column values: every flux day kept


def test_qc_weight_keeps_gap_filled_days_with_their_fraction(daily, tmp_path):
    folder = _pick(daily, tmp_path, FULLSET, ERAMET)
    f = read_fluxnet_daily(folder, qc="filter")
    w = read_fluxnet_daily(folder, qc="weight")
    assert f.weight is None
    kept_f, kept_w = np.isfinite(f.targets["gpp"]), np.isfinite(w.targets["gpp"])
    assert kept_w.sum() > kept_f.sum() and (kept_w | ~kept_f).all()
    low = kept_w[0] & ~kept_f[0]
    assert low.any() and (w.weight[0, low] < 0.5).all()
    assert (w.weight[1, kept_w[1]] == 1.0).all()  # ICOS files without QC: passed QC > 0.75 upstream
    with pytest.raises(InputError, match="qc"):
        read_fluxnet_daily(folder, qc="drop")


def test_drivers_only_files_read_without_targets(daily, tmp_path):
    raw = pd.read_csv(daily / FULLSET)
    met = [c for c in raw.columns if not any(k in c for k in ("NEE", "GPP", "RECO", "LE_"))]
    raw[met].to_csv(tmp_path / FULLSET, index=False)
    shutil.copy(daily / "sites.csv", tmp_path / "sites.csv")
    d = read_dataset(tmp_path, period="daily")
    assert d.targets == {} and not d.has_targets()
    assert np.isfinite(d.drivers["tmean"]).sum() == raw["TA_F"].ne(-9999).sum()


def test_clear_errors_name_the_file_and_column(daily, tmp_path):
    raw = pd.read_csv(daily / FULLSET)
    raw.drop(columns=["VPD_F"]).to_csv(tmp_path / FULLSET, index=False)
    with pytest.raises(InputError, match=r"AU-Ade.*VPD_F"):
        read_fluxnet_daily(tmp_path / FULLSET)
    raw.iloc[[0, 2]].to_csv(tmp_path / FULLSET, index=False)
    with pytest.raises(InputError, match="consecutive day"):
        read_fluxnet_daily(tmp_path / FULLSET)
    table = pd.read_csv(daily / "sites.csv")
    table[table.SITE_ID != "AU-Ade"].to_csv(tmp_path / "sites.csv", index=False)
    raw.to_csv(tmp_path / FULLSET, index=False)
    with pytest.raises(InputError, match="AU-Ade is not in the site table"):
        read_fluxnet_daily(tmp_path)
    # the site table: missing, without sites (no silent NaN positions), a position that is not a number
    with pytest.raises(InputError, match=r"site table .*nowhere.csv does not exist"):
        read_fluxnet_daily(tmp_path, sites=tmp_path / "nowhere.csv")
    table.iloc[:0].to_csv(tmp_path / "sites.csv", index=False)
    with pytest.raises(InputError, match="site table has no sites"):
        read_fluxnet_daily(tmp_path)
    bad = table.copy()
    bad["lat"] = bad["lat"].astype(object)
    bad.loc[bad.SITE_ID == "AU-Rig", "lat"] = "36 S"
    bad.to_csv(tmp_path / "sites.csv", index=False)
    with pytest.raises(InputError, match="lat of site AU-Rig is '36 S', expected a number"):
        read_fluxnet_daily(tmp_path)
    table.to_csv(tmp_path / "sites.csv", index=False)
    raw.iloc[:0].to_csv(tmp_path / FULLSET, index=False)
    with pytest.raises(InputError, match="no rows"):
        read_fluxnet_daily(tmp_path / FULLSET)


def test_all_shared_sites_read(daily):
    d = read_fluxnet_daily(daily)
    assert d.n_sites == 95 and np.isfinite(d.lat).all()
    assert int(np.isfinite(d.targets["gpp"]).sum()) == 209295  # the README's valid days
