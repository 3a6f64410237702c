"""VPD, driver accumulation, solar geometry and sub-period downscaling (exact period totals)."""

from __future__ import annotations

import numpy as np
import pytest

from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.downscale import Downscaler
from tamrl_coupler.physics.drivers import DriverAccumulator, ImportDerivations
from tamrl_coupler.physics.humidity import vpd_hpa
from tamrl_coupler.physics.solar import (
    ToaInsolation,
    cos_zenith,
    daily_mean_toa_insolation,
    mean_toa_insolation,
)
from tamrl_coupler.physics.units import driver_conversion


def test_vpd_known_values():
    # 20 degC: es = 23.334 hPa (Magnus, Alduchov & Eskridge); q for e = 10 hPa at 1000 hPa: q = 0.622 e / (p - 0.378 e)
    e = 10.0
    q = 0.622 * e / (1000.0 - 0.378 * e)
    v = vpd_hpa(np.array([293.15]), np.array([q]), np.array([100000.0]))
    assert v[0] == pytest.approx(23.334 - 10.0, abs=0.002)
    assert vpd_hpa(np.array([273.15]), np.array([0.02]), np.array([1e5]))[0] == 0.0  # supersaturated -> 0


def _fields(tas, rsds=100.0, pr=1e-5, huss=0.005, ps=1e5):
    """A step's imports, with VPD derived from temperature, humidity and pressure as the component derives it."""
    n = np.size(tas)
    f = {"tas": np.asarray(tas, dtype=float), "rsds": np.full(n, rsds), "pr": np.full(n, pr),
         "huss": np.full(n, huss), "ps": np.full(n, ps)}
    ImportDerivations(f, n).derive()
    return f


def test_accumulator_daily_extremes_and_partial_period():
    acc = DriverAccumulator(2, ["tmin", "tmax", "swdown", "vpd", "precip", "lai"])
    out = np.zeros((2, 6))
    # day 1: 4 steps of 6 h; day 2: two steps so far (open day)
    for tas, end in ((270, False), (280, False), (290, False), (275, True), (260, False), (300, False)):
        acc.add(_fields([tas, tas + 1]), 21600, end)
    acc.fill(out)
    assert out[0, 0] == pytest.approx(((270 + 260) / 2) - 273.15)  # mean of daily minima (open day included)
    assert out[0, 1] == pytest.approx(((290 + 300) / 2) - 273.15)
    assert out[0, 2] == pytest.approx(100.0 * 86400 * 1e-6)  # MJ m-2 d-1
    assert out[0, 4] == pytest.approx(1e-5 * 86400)  # mm d-1
    assert np.isnan(out[0, 5])  # lai not provided -> missing for the model
    np.testing.assert_array_equal(acc.running_sum_of("rsds"), 6 * 100.0 * 21600)  # for the GPP downscaling
    acc.reset()
    with pytest.raises(InputError, match="no coupling step"):
        acc.fill(out)


def test_accumulator_period_level_imports():
    acc = DriverAccumulator(1, ["tmin", "tmax", "vpd"])
    acc.add({"tasmin": np.array([280.0]), "tasmax": np.array([290.0]), "vpd": np.array([850.0]),
             "rsds": np.array([1.0]), "pr": np.array([0.0])}, 31 * 86400, True)
    out = acc.fill(np.zeros((1, 3)))
    np.testing.assert_allclose(out[0], [280 - 273.15, 290 - 273.15, 8.5], rtol=1e-14)


def test_import_derivations_and_driver_units():
    f = {"tasmin": np.array([280.0]), "tasmax": np.array([290.0]), "huss": np.array([0.005]), "ps": np.array([1e5])}
    d = ImportDerivations(f, 1)
    assert d.derived == ["tas", "vpd"]  # tas first: vpd is derived from it
    d.derive()
    assert f["tas"][0] == 285.0
    assert f["vpd"][0] == pytest.approx(100.0 * vpd_hpa(np.array([285.0]), f["huss"], f["ps"])[0], rel=1e-15)
    # model drivers' units from the import's canonical unit: one table, each factor written once
    assert driver_conversion("swdown", "rsds").scale == pytest.approx(86400 * 1e-6, rel=1e-15)
    assert driver_conversion("precip", "pr").scale == pytest.approx(86400.0, rel=1e-15)
    assert driver_conversion("vpd", "vpd").scale == pytest.approx(0.01, rel=1e-15)
    assert driver_conversion("tmin", "tas").offset == -273.15


def test_accumulator_restart_state_and_formats_1_and_2():
    drivers = ["tmin", "swdown", "vpd", "igbp"]
    acc = DriverAccumulator(2, drivers)
    acc.add({**_fields([280.0, 281.0]), "igbp": np.array([3.0, 4.0])}, 10800, False)
    arrays, scalars = acc.state_arrays(), acc.state_scalars()
    assert set(arrays) == {"acc_day_tmin", "acc_sum_tmin", "acc_sum_swdown", "acc_sum_vpd", "acc_last_igbp"}
    expected = acc.fill(np.zeros((2, 4)))
    again = DriverAccumulator(2, drivers)
    again.load_state(arrays, scalars)
    np.testing.assert_array_equal(again.fill(np.zeros((2, 4))), expected)
    # formats 1 and 2: other names, and VPD summed in hPa (now in the import's Pa)
    legacy = {"acc_day_min": arrays["acc_day_tmin"], "acc_sum_tmin": arrays["acc_sum_tmin"],
              "acc_sum_sw": arrays["acc_sum_swdown"], "acc_sum_vpd": arrays["acc_sum_vpd"] / 100.0,
              "acc_landcover": arrays["acc_last_igbp"]}
    old = DriverAccumulator(2, drivers)
    old.load_state(legacy, {k: v for k, v in scalars.items() if k in ("acc_days_done", "acc_day_steps",
                                                                      "acc_elapsed")} | {"acc_has_landcover": 1.0})
    np.testing.assert_allclose(old.fill(np.zeros((2, 4))), expected, rtol=1e-15)


def test_solar_geometry():
    # equator at an equinox: daily-mean TOA = S0 * ecc / pi
    q = daily_mean_toa_insolation(np.array([0.0, 89.0, -89.0]), 80)
    assert 420 < q[0] < 440
    assert q[1] < 10 and q[2] < 10
    assert daily_mean_toa_insolation(np.array([80.0]), 1)[0] == 0.0  # polar night
    noon = cos_zenith(np.array([0.0]), np.array([0.0]), np.datetime64("2015-03-20T12:00"))
    midnight = cos_zenith(np.array([0.0]), np.array([0.0]), np.datetime64("2015-03-20T00:00"))
    assert noon[0] > 0.99 and midnight[0] == 0.0
    m = mean_toa_insolation(np.array([0.0]), np.array([0.0]), np.datetime64("2015-03-20T00:00"), 86400, samples=96)
    assert m[0] == pytest.approx(q[0], rel=0.02)


def test_preallocated_insolation_is_bit_for_bit_the_function():
    """The downscaling's allocation-free insolation gives exactly the values of mean_toa_insolation."""
    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(-90, 90, 500), rng.uniform(-180, 360, 500)
    toa, out = ToaInsolation(lat, lon), np.zeros(500)
    for start, dt, samples in (("2015-01-01T00:00", 10800, 2), ("2015-06-21T13:30", 1800, 2),
                               ("2016-02-29T21:00", 86400, 12)):
        ref = mean_toa_insolation(lat, lon, np.datetime64(start), dt, samples=samples)
        assert np.array_equal(toa.mean(np.datetime64(start), dt, samples, out=out), ref)
        assert ref.max() > 100.0 and ref.min() == 0.0


def test_downscaling_period_totals_exact_and_follow_light():
    rng = np.random.default_rng(1)
    n, dt = 50, 3600
    lat, lon = rng.uniform(-60, 70, n), rng.uniform(-180, 180, n)
    ds = Downscaler(lat, lon)
    period = 31 * 86400
    start = np.datetime64("2015-01-01T00:00:00")
    gpp_out, reco_out = np.zeros(n), np.zeros(n)
    tot_g, tot_r = np.zeros(n), np.zeros(n)
    sum_sw = np.zeros(n)
    steps = period // dt
    day_g, night_g = [], []
    for k in range(steps):
        t0 = start + np.timedelta64(k * dt, "s")
        rsds = 0.7 * mean_toa_insolation(lat, lon, t0, dt, samples=2)
        tas = 280 + 5 * np.sin(2 * np.pi * k / 24)
        sum_sw += rsds * dt
        # the model's estimate of the period rate drifts while the period fills up
        g_rate = 3.0 + np.sin(k / 50.0) + 0.1 * np.arange(n) / n
        r_rate = 2.0 + 0.5 * np.cos(k / 70.0) + 0.0 * lat
        ds.step(g_rate, r_rate, rsds, np.full(n, tas), sum_sw, float((k + 1) * dt), float(period - (k + 1) * dt),
                float(period), t0, dt, gpp_out, reco_out)
        tot_g += gpp_out * dt / 86400.0
        tot_r += reco_out * dt / 86400.0
        (day_g if rsds[0] > 50 else night_g).append(gpp_out[0])
    final_g, final_r = g_rate * 31, r_rate * 31
    np.testing.assert_allclose(tot_g, final_g, rtol=1e-13, atol=0)
    np.testing.assert_allclose(tot_r, final_r, rtol=1e-13, atol=0)
    assert np.mean(day_g) > 5 * np.mean(night_g)  # GPP follows the light


def test_downscaling_one_step_per_period_returns_the_rate():
    ds = Downscaler(np.array([10.0]), np.array([20.0]))
    g, r = np.zeros(1), np.zeros(1)
    rate = np.array([3.3])
    period = 28 * 86400
    ds.step(rate, rate * 0.5, np.array([200.0]), np.array([290.0]), np.array([200.0 * period]), float(period), 0.0,
            float(period), np.datetime64("2015-02-01"), period, g, r)
    assert g[0] == rate[0] and r[0] == rate[0] * 0.5
