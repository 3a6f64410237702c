"""The error-correlation fit recovers a known e-folding time and correlation length from synthetic residuals."""

from __future__ import annotations

import numpy as np
import pytest

from tamrl_coupler.training.error_correlation import (
    ErrorCorrelation,
    correlation,
    fit_error_correlation,
    great_circle_km,
    lag_correlation,
)


def synthetic(tau: float, length: float, frac: float, n_sites: int = 40, n_days: int = 730, seed: int = 1):
    """Residuals with a separable covariance: an AR(1) in time (e-folding ``tau`` days) whose innovations are
    correlated in space as exp(-d / ``length``), plus a white part holding ``1 - frac`` of the variance."""
    rng = np.random.default_rng(seed)
    lat = rng.uniform(35.0, 60.0, n_sites)
    lon = rng.uniform(-10.0, 30.0, n_sites)
    cov = np.exp(-great_circle_km(lat, lon) / length)
    chol = np.linalg.cholesky(cov + 1e-10 * np.eye(n_sites))
    phi = np.exp(-1.0 / tau)
    ar = np.zeros((n_sites, n_days))
    ar[:, 0] = chol @ rng.standard_normal(n_sites)
    for t in range(1, n_days):
        ar[:, t] = phi * ar[:, t - 1] + np.sqrt(1 - phi**2) * (chol @ rng.standard_normal(n_sites))
    resid = 2.5 * (np.sqrt(frac) * ar + np.sqrt(1 - frac) * rng.standard_normal((n_sites, n_days)))
    time = np.datetime64("2010-01-01") + np.arange(n_days).astype("timedelta64[D]")
    obs = rng.normal(3.0, 1.0, (n_sites, n_days))
    obs[:, rng.random(n_days) < 0.2] = np.nan  # missing days, as at towers
    return obs, obs - resid, time, lat, lon


def test_fit_recovers_known_efolding_time_and_length():
    obs, pred, time, lat, lon = synthetic(tau=20.0, length=300.0, frac=0.7, n_sites=50, n_days=1460, seed=2)
    fit = fit_error_correlation(obs, pred, time, lat, lon, n_bootstrap=10, max_lag=60, fit_lag=40)
    assert fit.temporal.scale == pytest.approx(20.0, rel=0.2)
    assert fit.temporal.fraction == pytest.approx(0.7, abs=0.1)
    assert fit.temporal.offset < 0.05  # no site biases in these residuals
    assert fit.spatial.scale == pytest.approx(300.0, rel=0.25)
    assert fit.spatial.fraction == pytest.approx(0.7, abs=0.1)
    lo, hi = fit.temporal.scale_ci90
    assert lo < fit.temporal.scale < hi
    assert fit.error_sd == pytest.approx(2.5, rel=0.15)
    # the binned pair table counts every pair that entered the fit
    assert sum(fit.spatial.table["pairs"]) == fit.spatial.table["pairs_used_in_fit"] == 50 * 49 // 2
    back = ErrorCorrelation.from_dict(fit.to_dict())
    assert back == fit


def test_site_biases_are_the_persistent_share():
    obs, pred, time, lat, lon = synthetic(tau=10.0, length=1.0, frac=1.0, n_sites=30, n_days=1000, seed=3)
    bias = np.random.default_rng(0).normal(0.0, 2.5, (30, 1))  # as large as the day-to-day error
    fit = fit_error_correlation(obs, pred - bias, time, lat, lon, n_bootstrap=0)
    assert fit.temporal.offset == pytest.approx(0.5, abs=0.15)
    assert fit.temporal.scale == pytest.approx(10.0, rel=0.25)


def test_fit_tells_short_from_long_memory():
    short = fit_error_correlation(*synthetic(tau=3.0, length=100.0, frac=1.0, seed=2), n_bootstrap=0)
    long = fit_error_correlation(*synthetic(tau=40.0, length=1000.0, frac=1.0, seed=2), n_bootstrap=0)
    assert short.temporal.scale < 5.0 < 25.0 < long.temporal.scale
    assert short.spatial.scale < 200.0 < 600.0 < long.spatial.scale
    # with every error correlated (frac 1) the pure exponential is the same model
    assert short.spatial_pure.scale == pytest.approx(100.0, rel=0.3)


def test_lag_correlation_by_hand():
    a = np.array([[1.0, -1.0, 1.0, -1.0, np.nan], [2.0, 2.0, -2.0, -2.0, 0.0]])
    rho, n = lag_correlation(a, 1)
    assert n.tolist() == [9, 7]
    assert rho[0] == pytest.approx(1.0)
    # lag 1: site 0 pairs (1,-1),(-1,1),(1,-1) -> -3; site 1 (2,2),(2,-2),(-2,-2),(-2,0) -> 4+(-4)+4+0 = 4
    num = -3.0 + 4.0
    den = np.sqrt((3.0 + 4 + 4 + 4 + 4) * (3.0 + 4 + 4 + 4 + 0))
    assert rho[1] == pytest.approx(num / den)


def test_correlation_model_is_one_on_the_diagonal():
    obs, pred, time, lat, lon = synthetic(tau=10.0, length=300.0, frac=0.8, n_sites=12, n_days=200)
    fit = fit_error_correlation(obs, pred, time, lat, lon, n_bootstrap=0, max_lag=30, fit_lag=20)
    c = correlation(fit, np.array([0.0, 1.0, 10.0]), np.array([0.0, 0.0, 300.0]))
    assert c[0] == 1.0
    t = fit.temporal
    assert c[1] == pytest.approx(t.offset + t.fraction * np.exp(-1.0 / t.scale))
    assert c[2] < c[1]
