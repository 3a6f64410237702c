"""Per-site scores against a baseline, the bootstrap over sites, climate zones and extreme-day masks, on small cases
worked out by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.training.climate import koppen_zone, monthly_normals
from tamrl_coupler.training.extremes import drought_summer, hot_dry_days
from tamrl_coupler.training.site_scores import compare, compare_groups, fmt_ratio, longest_per_fold, paired_sites


def _three_sites():
    """Errors (pred - obs) of a model and a baseline at three sites with 4, 2 and 3 observed days; day 5 has no
    observation anywhere and site 1's baseline misses a day that the model predicts (left out of both)."""
    nan = np.nan
    obs = np.zeros((3, 5))
    obs[:, 4] = nan
    obs[1, 2:4] = [0.0, nan]
    pred = np.array([[1, 1, 1, 1, 9], [3, 3, 7, nan, 9], [2, 2, 2, nan, 9]], float)
    base = np.array([[2, 2, -2, 2, 9], [1, -1, nan, nan, 9], [2, -2, 2, nan, 9]], float)
    return pred, base, obs, np.array([0, 0, 1])


def test_site_ratios_and_the_longest_site_left_out_by_hand():
    pred, base, obs, fold = _three_sites()
    p = paired_sites(pred, base, obs, min_obs=2)
    np.testing.assert_array_equal(p.n, [4, 2, 3])
    np.testing.assert_array_equal(p.sse, [4, 18, 12])
    np.testing.assert_array_equal(p.sse_base, [16, 2, 12])
    c = compare(pred, base, obs, fold, min_obs=2)
    assert c["pooled_ratio"] == pytest.approx(np.sqrt(34 / 30), rel=1e-12)
    assert c["median_site_ratio"] == pytest.approx(1.0)  # ratios 0.5, 3, 1
    assert c["median_site_rmse"] == pytest.approx(2.0) and c["median_site_rmse_base"] == pytest.approx(2.0)
    assert c["share_better"] == pytest.approx(1 / 3)
    # the longest record of fold 0 is site 0 (4 days), fold 1 has only site 2: site 1 is left
    w = c["without_longest"]
    assert w["left_out"] == [0, 2] and w["n_sites"] == 1
    assert w["pooled_ratio"] == pytest.approx(3.0) and w["median_site_ratio"] == pytest.approx(3.0)
    assert np.isnan(w["pooled_ratio_ci"]).all()  # one site: no interval
    # min_obs drops site 1 (2 days)
    assert compare(pred, base, obs, fold, min_obs=3)["n_sites"] == 2


def test_bootstrap_interval_matches_the_enumerated_resamples():
    pred, base, obs, fold = _three_sites()
    c = compare(pred, base, obs, fold, min_obs=2, n_boot=20000, seed=1)
    # the median of three draws from {0.5, 3, 1} is 0.5 or 3 with probability 7/27 each: the 5 % and 95 %
    # quantiles are those two values
    assert c["median_site_ratio_ci"] == [pytest.approx(0.5), pytest.approx(3.0)]
    sse, sse_b = np.array([4.0, 18, 12]), np.array([16.0, 2, 12])
    pooled = np.sort([np.sqrt(sse[list(d)].sum() / sse_b[list(d)].sum())
                      for d in itertools.product(range(3), repeat=3)])
    lo, hi = c["pooled_ratio_ci"]
    assert np.quantile(pooled, 0.02) <= lo <= np.quantile(pooled, 0.08)
    assert np.quantile(pooled, 0.92) <= hi <= np.quantile(pooled, 0.98)
    assert np.isclose(pooled, lo).any() and np.isclose(pooled, hi).any()  # values a resample can take
    # the same seed draws the same sites: the interval is reproducible
    again = compare(pred, base, obs, fold, min_obs=2, n_boot=20000, seed=1)
    for key in ("pooled_ratio_ci", "median_site_ratio_ci"):
        assert again[key] == c[key]


def test_interval_collapses_when_every_site_has_the_same_ratio_and_bold_means_below_one():
    obs = np.zeros((4, 3))
    base = np.ones((4, 3)) * np.arange(1, 5)[:, None]
    c = compare(0.9 * base, base, obs, min_obs=3)
    assert c["pooled_ratio"] == pytest.approx(0.9) and c["pooled_ratio_ci"] == [pytest.approx(0.9)] * 2
    assert fmt_ratio(c["pooled_ratio"], c["pooled_ratio_ci"]) == "**0.900 [0.900, 0.900]**"
    assert fmt_ratio(0.95, [0.9, 1.01]) == "0.950 [0.900, 1.010]"
    assert c["share_better"] == 1.0


def test_groups_and_longest_per_fold():
    pred, base, obs, fold = _three_sites()
    g = compare_groups(pred, base, obs, np.array(["ENF", "", "ENF"]), min_obs=2)
    assert list(g) == ["unknown", "ENF"] or set(g) == {"unknown", "ENF"}
    assert g["ENF"]["pooled_ratio"] == pytest.approx(np.sqrt(16 / 28))
    assert g["unknown"]["median_site_ratio"] == pytest.approx(3.0)
    np.testing.assert_array_equal(longest_per_fold(np.array([5, 7, 7, 1]), np.array([0, 0, 0, 1])),
                                  [False, True, False, True])


def test_koppen_like_zones_by_hand():
    flat = np.ones(12)
    north_summer = np.r_[np.zeros(3), np.ones(6), np.zeros(3)].astype(bool)
    t = np.stack([
        26 * flat,  # tropical: coldest month 26
        25 * flat,  # hot desert: 100 mm a year < 10 * (2 * 25 + 14)
        np.where(north_summer, 8.0, -20.0),  # polar: warmest month 8
        np.where(north_summer, 22.0, 8.0),  # Mediterranean: mild winter, dry summer
        np.where(north_summer, 15.0, 2.0),  # temperate, rain all year
        np.where(north_summer, 18.0, -12.0),  # continental
        np.where(north_summer, 8.0, 22.0),  # the Mediterranean climate in the south: seasons swap
    ])
    p = np.stack([200 * flat, 100 / 12 * flat, 30 * flat, np.where(north_summer, 5.0, 90.0), 70 * flat,
                  60 * flat, np.where(north_summer, 90.0, 5.0)])
    lat = np.array([5.0, 25, 70, 40, 50, 55, -35])
    assert koppen_zone(t, p, lat).tolist() == ["A", "B", "E", "Cs", "C", "D", "Cs"]
    assert koppen_zone(t[:1] * np.nan, p[:1], lat[:1]).tolist() == [""]


def _daily(n_days=730, lat=(48.0, 10.0), lon=(10.0, 20.0)):
    time = (np.datetime64("2003-01-01") + np.arange(n_days)).astype("datetime64[ns]")
    doy = np.arange(n_days) % 365
    t = np.stack([10 - 10 * np.cos(2 * np.pi * doy / 365)] * 2)
    rng = np.random.default_rng(0)
    drivers = {"tmean": t, "vpd": t / 2 + rng.normal(size=t.shape), "precip": np.full(t.shape, 2.0)}
    return FluxDataset(sites=np.array(["A-1", "B-1"]), time=time, period="daily", drivers=drivers,
                       targets={"gpp": np.ones(t.shape)}, igbp=np.array(["ENF", "GRA"]), lat=np.array(lat),
                       lon=np.array(lon))


def test_monthly_normals_hot_dry_days_and_drought_summers():
    data = _daily()
    tn, pn = monthly_normals(data)
    assert pn[0, 0] == pytest.approx(62.0) and pn[0, 1] == pytest.approx(2 * 28.25)
    assert tn[0].argmax() in (5, 6) and tn[0].min() == pytest.approx(np.mean(data.drivers["tmean"][0, :31]), rel=0.2)
    hd = hot_dry_days(data)
    t, v = data.drivers["tmean"][0], data.drivers["vpd"][0]
    assert hd[0].sum() == ((t >= np.quantile(t, 0.9)) & (v >= np.quantile(v, 0.95))).sum() > 0
    assert (t[hd[0]] >= np.quantile(t, 0.9)).all()
    ds = drought_summer(data, 2003)
    days = np.asarray(data.time).astype("datetime64[D]")
    jja = (days >= np.datetime64("2003-06-01")) & (days <= np.datetime64("2003-08-31"))
    np.testing.assert_array_equal(ds[0], jja)  # 48 N 10 E is in Europe
    assert not ds[1].any()  # 10 N 20 E is not
