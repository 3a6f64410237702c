"""Pieces of the daily CV: co-located towers share a fold, the daily XGBoost features (trailing means, latitude)."""

from __future__ import annotations

import numpy as np

from tamrl_coupler.baselines.xgb import build_daily_features
from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.training.cv import colocated_groups, stratified_group_folds


def test_towers_within_5_km_share_a_group_and_a_fold():
    # IT-CA1/IT-CA2/IT-CA3 (chain of neighbours), DE-Tha alone 40 km away, two far sites
    lat = np.array([42.3804, 42.3772, 42.3800, 50.9626, 45.0, -33.6])
    lon = np.array([12.0266, 12.0260, 12.0222, 13.5651, 10.0, 150.7])
    sites = np.array(["IT-CA1", "IT-CA2", "IT-CA3", "DE-Tha", "X-1", "X-2"])
    data = FluxDataset(sites=sites, time=np.arange(3).astype("datetime64[D]").astype("datetime64[ns]"),
                       period="daily", drivers={}, targets={}, igbp=np.array(["DBF"] * 6), lat=lat, lon=lon)
    g = colocated_groups(data)
    assert g[0] == g[1] == g[2] and len(set(g.tolist())) == 4
    fold = stratified_group_folds(data.igbp, 3, 0, g)
    assert fold[0] == fold[1] == fold[2]


def test_daily_features_trailing_means_and_latitude():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 60, 2))
    x[0, 10:12, 0] = np.nan
    time = np.arange(np.datetime64("2010-01-01"), np.datetime64("2010-03-02")).astype("datetime64[ns]")
    f, names = build_daily_features(x, ["tmean", "igbp"], time, np.array([50.0, -10.0]))
    m7 = f[..., names.index("tmean_mean7")]
    np.testing.assert_allclose(m7[0, 20], np.nanmean(x[0, 14:21, 0]), rtol=1e-6)
    np.testing.assert_allclose(m7[0, 12], np.nanmean(x[0, 6:13, 0]), rtol=1e-6)  # gaps ignored, not zero
    assert f[1, 5, names.index("lat")] == -10.0
    assert "igbp_ENF" in names and "doy_sin" in names
