"""Climatological days from monthly normals (physics/climatology.py): every monthly mean kept exactly, by the smooth
interpolation, the shortwave's transmissivity route, the synthetic weather and the sub-daily steps."""

from __future__ import annotations

import numpy as np

from tamrl_coupler.physics import climatology as clim
from tamrl_coupler.physics.humidity import saturation_vapour_pressure_hpa

MONTH = clim.month_of_day_index()


def monthly_means(days: np.ndarray) -> np.ndarray:
    return np.stack([days[MONTH == k].mean(axis=0) for k in range(12)])


def test_smooth_days_keep_monthly_means():
    rng = np.random.default_rng(0)
    m = rng.uniform(-20, 30, (12, 7))
    d = clim.monthly_to_daily(m)
    assert d.shape == (365, 7)
    assert np.allclose(monthly_means(d), m, rtol=0, atol=1e-10)
    assert np.abs(np.diff(d, axis=0)).max() < np.abs(np.diff(m, axis=0)).max()  # smooth: no monthly steps
    p = np.array([0, 0, 0.1, 5, 9, 0.2, 0, 0, 0, 3, 0, 0.05])[:, None]  # dry months next to wet ones
    dp = clim.monthly_to_daily(p, non_negative=True)
    assert dp.min() >= 0 and np.allclose(monthly_means(dp), p, atol=1e-12)


def test_shortwave_follows_the_sun_and_keeps_the_normals():
    lat = np.array([-60.0, 0.0, 45.0, 75.0])
    rad = np.array([[5, 230, 60, 0], [40, 230, 90, 5], [90, 235, 130, 40], [150, 230, 180, 110],
                    [190, 225, 220, 200], [210, 220, 240, 230], [200, 220, 235, 210], [170, 225, 210, 150],
                    [120, 230, 160, 70], [70, 230, 110, 15], [25, 230, 70, 0], [5, 230, 50, 0]], float)
    day = clim.daily_shortwave(rad, lat)
    assert np.allclose(monthly_means(day), rad, atol=1e-9)
    assert (day[:, 3][MONTH == 0] == 0).all()  # polar night stays dark


def test_synthetic_weather_keeps_means_and_has_wet_and_dry_days():
    rng = np.random.default_rng(1)
    n = 50
    days = {"tmean": clim.monthly_to_daily(rng.uniform(-10, 25, (12, n))),
            "swdown": clim.monthly_to_daily(rng.uniform(20, 250, (12, n)), non_negative=True),
            "vpd": clim.monthly_to_daily(rng.uniform(0.5, 20, (12, n)), non_negative=True)}
    precip = rng.uniform(0, 8, (12, n))
    w = clim.synthetic_weather(days, precip)
    for k in ("tmean", "swdown", "vpd"):
        assert np.allclose(monthly_means(w[k]), monthly_means(days[k]), rtol=1e-12, atol=1e-9), k
    assert np.allclose(monthly_means(w["precip"]), precip, rtol=1e-12)
    wet = w["precip"] > 0
    assert 0.1 < wet.mean() < 0.9  # days are wet or dry, not all drizzle
    assert w["swdown"][wet].mean() < w["swdown"][~wet].mean()  # wet days are darker
    assert np.array_equal(w["precip"], clim.synthetic_weather(days, precip)["precip"])  # deterministic


def test_diurnal_cycle_and_day_mean_vpd():
    t = clim.diurnal_temperature(np.array([10.0, -5.0]), np.array([12.0, 6.0]), np.array([0.0, 90.0]))
    assert t.shape == (8, 2) and np.allclose(t.mean(axis=0), [10.0, -5.0], atol=1e-12)
    e = np.array([8.0, 2.0])
    steps, mean = clim.day_mean_vpd(t, e)
    assert np.allclose(steps.mean(axis=0), mean)
    # es is convex: the day's mean VPD is above es(Tmean) - e, as towers' VPD_F is
    assert (mean > clim.vpd_of_mean_temperature(np.array([10.0, -5.0]), e)).all()
    fao = clim.fao56_vpd(np.array([4.0]), np.array([16.0]), np.array([8.0]))
    want = (saturation_vapour_pressure_hpa(np.array([16.0])) + saturation_vapour_pressure_hpa(np.array([4.0]))) / 2 - 8
    assert np.allclose(fao, want)
