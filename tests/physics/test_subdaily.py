"""Within a day: the exact insolation integral, the drivers of the last 24 hours a daily model is evaluated on,
daily-period downscaling (exact totals, fluxes in the day's light and warmth), sub-daily forcing from daily means."""

from __future__ import annotations

import numpy as np
import pytest

from tamrl_coupler.constants import SECONDS_PER_DAY
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics import subdaily
from tamrl_coupler.physics.downscale import Downscaler, q10_weight
from tamrl_coupler.physics.drivers import DriverAccumulator
from tamrl_coupler.physics.solar import ToaInsolation, mean_toa_insolation
from tamrl_coupler.physics.trailing import TrailingDay, UnseenLight

LAT = np.array([0.0, 50.96, -45.0, 80.0, -80.0, 89.9])
LON = np.array([0.0, 13.57, 170.0, -100.0, 20.0, 5.0])
DAILY = ["tmean", "swdown", "vpd", "precip", "igbp"]


def test_insolation_integral_matches_fine_sampling_and_polar_cases():
    toa, out = ToaInsolation(LAT, LON), np.zeros(LAT.size)
    for start, seconds in (("2014-06-01T00:00", 86400), ("2014-06-01T07:30", 3600), ("2014-06-01T13:00", 39600),
                           ("2014-12-21T05:00", 1800), ("2014-06-01T23:30", 1800)):
        t = np.datetime64(start)
        toa.integral(t, seconds, out)
        ref = mean_toa_insolation(LAT, LON, t, seconds, samples=4000) * seconds
        # the declination is held at the interval's middle: 1e-3 of a day's insolation at most
        np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3 * 400 * seconds)
    toa.integral(np.datetime64("2014-12-21T00:00"), 86400, out)
    assert out[3] == 0.0 and out[4] > 0  # polar night in the north, polar day in the south
    assert toa.integral(np.datetime64("2014-06-01T10:00"), 0.0, out).sum() == 0.0
    with pytest.raises(ValueError, match="at most one day"):
        toa.integral(np.datetime64("2014-06-01"), 90000.0, out)


def _day_fields(n_steps: int, step: int, rng: np.random.Generator, n: int = 3) -> list[dict[str, np.ndarray]]:
    out = []
    for k in range(n_steps):
        hour = (k * step / 3600.0) % 24
        out.append({"tas": 285 + 5 * np.sin(2 * np.pi * (hour - 9) / 24) + rng.normal(0, 0.3, n),
                    "rsds": np.maximum(0, 600 * np.sin(np.pi * (hour - 6) / 12)) * rng.uniform(0.5, 1, n),
                    "vpd": rng.uniform(100, 900, n), "pr": rng.uniform(0, 2e-5, n)})
    return out


@pytest.mark.parametrize("step", [1800, 3600, 10800])
def test_trailing_day_is_the_last_24_hours_and_the_day_at_its_end(step):
    rng = np.random.default_rng(1)
    per_day = SECONDS_PER_DAY // step
    fields = _day_fields(3 * per_day, step, rng)
    acc = DriverAccumulator(3, DAILY)
    trail = TrailingDay(acc)
    out, day_out = np.zeros((3, len(DAILY))), np.zeros((3, len(DAILY)))
    t0 = np.datetime64("2015-03-01T00:00:00")
    for k, f in enumerate(fields):
        start = t0 + np.timedelta64(k * step, "s")
        ends_day = (k + 1) % per_day == 0
        acc.add(f, step, ends_day)
        trail.add(f, start, step)
        trail.fill(out)
        # the steps after the same hour (slot) of the day before, as far as the run goes back
        slot_end_before = (k * step // 3600) * 3600 + 3600 - SECONDS_PER_DAY
        lo = max(0, -(-slot_end_before // step))
        window = fields[lo:k + 1]
        np.testing.assert_allclose(out[:, 0], np.mean([w["tas"] for w in window], axis=0) - 273.15, atol=1e-12)
        np.testing.assert_allclose(out[:, 1], np.mean([w["rsds"] for w in window], axis=0) * 0.0864, rtol=1e-12)
        if ends_day:  # at the day's end: the day itself, as the accumulator has it
            acc.fill(day_out)
            np.testing.assert_allclose(out[:, :4], day_out[:, :4], rtol=1e-12, atol=1e-12)
            acc.reset()
    # restart: the slots carried exactly
    other = TrailingDay(DriverAccumulator(3, DAILY))
    for r_other, r in zip(other.acc.rules, acc.rules, strict=True):
        r_other.seen = r.seen
    other.load_state(trail.state_arrays(), trail.state_scalars())
    a, b = np.zeros((3, len(DAILY))), np.zeros((3, len(DAILY)))
    other.acc.add(fields[0], step, False)
    acc.add(fields[0], step, False)
    nxt = t0 + np.timedelta64(len(fields) * step, "s")
    trail.add(fields[0], nxt, step)
    other.add(fields[0], nxt, step)
    assert np.array_equal(trail.fill(a), other.fill(b), equal_nan=True)
    # a restart of another layout is refused with the key and the shape, before anything is changed
    arrays = trail.state_arrays()
    key = next(iter(arrays))
    with pytest.raises(InputError, match=rf"array '{key}' has shape \(3, 12\), expected \(3, 24\)"):
        other.load_state({**arrays, key: arrays[key][:, :12]}, trail.state_scalars())
    with pytest.raises(InputError, match="the last 24 hours are there for"):
        other.load_state({key: arrays[key]}, trail.state_scalars())
    assert np.array_equal(trail.fill(a), other.fill(b), equal_nan=True)  # unchanged


def test_first_day_fills_the_unseen_light_from_the_sun():
    """A run starting at midnight UTC (night in Europe, day in the Pacific): before 24 hours are seen, the shortwave
    driver is the seen light plus the transmissivity times the insolation of the hours not seen, which is the day's
    light when the sky is steady; without it the window is the hours seen so far (a dark day for a night start)."""
    lat, lon = np.array([50.96, -33.6, 20.0]), np.array([13.57, 150.7, -155.0])
    tau, step = np.array([0.6, 0.3, 0.75]), 1800
    insolation = ToaInsolation(lat, lon)
    acc = DriverAccumulator(3, DAILY)
    trail = TrailingDay(acc)
    t0 = np.datetime64("2014-06-01T00:00:00")
    day_toa = insolation.integral(t0, SECONDS_PER_DAY, np.zeros(3)) / SECONDS_PER_DAY
    with_light, without = np.zeros((3, len(DAILY))), np.zeros((3, len(DAILY)))
    toa = np.zeros(3)
    for k in range(47):
        start = t0 + np.timedelta64(k * step, "s")
        rsds = tau * insolation.integral(start, step, toa) / step
        f = {"tas": np.full(3, 290.0), "rsds": rsds, "vpd": np.full(3, 500.0), "pr": np.zeros(3)}
        acc.add(f, step, False)
        trail.add(f, start, step)
        assert trail.unseen_seconds() == SECONDS_PER_DAY - (k + 1) * step
        light = UnseenLight(tau, insolation, start + np.timedelta64(step, "s"))
        trail.fill(with_light, light)
        np.testing.assert_allclose(with_light[:, 1], tau * day_toa * 0.0864, rtol=1e-3)
        trail.fill(without)
        seen = (k + 1) * step
        np.testing.assert_allclose(without[:, 1], tau * insolation.integral(t0, seen, toa) / seen * 0.0864,
                                   rtol=1e-3, atol=1e-3 * with_light[:, 1].max())
        if k == 7:  # 04 h UTC: Tharandt has seen almost no light yet, its day is not dark
            assert without[0, 1] < 0.05 * with_light[0, 1]
        assert np.array_equal(with_light[:, [0, 2, 3]], without[:, [0, 2, 3]])  # only the light is filled in
    start = t0 + np.timedelta64(47 * step, "s")
    f["rsds"] = tau * insolation.integral(start, step, toa) / step
    trail.add(f, start, step)
    assert trail.unseen_seconds() == 0.0
    a, b = trail.fill(np.zeros((3, len(DAILY))), light), trail.fill(np.zeros((3, len(DAILY))))
    assert np.array_equal(a, b, equal_nan=True)  # a full day seen: nothing filled in
    # carried by a restart: the seconds seen
    other = TrailingDay(DriverAccumulator(3, DAILY))
    other.load_state(trail.state_arrays(), trail.state_scalars())
    assert other.unseen_seconds() == 0.0


def test_trailing_day_with_missing_values_and_expected_weights():
    acc = DriverAccumulator(2, DAILY, nan_aware=True)
    trail = TrailingDay(acc)
    t0 = np.datetime64("2015-03-01T00:00:00")
    for k in range(48):
        tas = np.array([280.0 + k % 24, np.nan if k % 2 else 290.0])
        f = {"tas": tas, "rsds": np.array([100.0, 200.0]), "vpd": np.array([500.0, 500.0]),
             "pr": np.array([0.0, 1e-5])}
        acc.add(f, 3600, (k + 1) % 24 == 0)
        trail.add(f, t0 + np.timedelta64(k * 3600, "s"), 3600)
    out = trail.fill(np.zeros((2, len(DAILY))))
    assert out[0, 0] == pytest.approx(np.mean(280.0 + np.arange(24)) - 273.15)
    assert out[1, 0] == pytest.approx(290.0 - 273.15)  # over the valid hours only
    # the rest of the day (18-24 h) as the day before held it: Q10 weights of 298..303 K for cell 0
    come = trail.mean_to_come("tas", np.datetime64("2015-03-03T18:00:00"), 6 * 3600, q10_weight, np.zeros(2))
    assert come[0] == pytest.approx(np.mean(q10_weight(280.0 + np.arange(18, 24.0), np.zeros(6))))
    assert come[1] == pytest.approx(q10_weight(np.array([290.0]), np.zeros(1))[0])  # its valid hours only
    empty = TrailingDay(DriverAccumulator(2, DAILY))
    assert np.isnan(empty.mean_to_come("tas", t0, 3600, q10_weight, np.zeros(2))).all()


def test_daily_period_downscaling_exact_totals_light_and_warmth():
    """A daily period at 30-min steps: each day's totals are the final predictions exactly, also when the estimate
    moves during the day; with a steady estimate GPP is in the day's light and, once the day before is in the
    slots, Reco follows the temperature through the day."""
    lat, lon = np.array([50.96]), np.array([13.57])
    step, per_day = 1800, 48
    down = Downscaler(lat, lon)
    acc = DriverAccumulator(1, DAILY)
    trail = TrailingDay(acc)
    t0 = np.datetime64("2014-06-01T00:00:00")
    toa = subdaily.toa_steps(lat, lon, np.datetime64("2014-06-01"), step)[:, 0]
    hours = subdaily.solar_hours(lon, np.datetime64("2014-06-01"), step)[:, 0]
    tas_day = subdaily.temperature_steps(np.array([288.0]), np.array([10.0]), hours[:, None])[:, 0]
    come, gpp, reco = np.zeros(1), np.zeros(1), np.zeros(1)
    final = {"gpp": [8.0, 6.0, 7.0], "reco": [4.0, 5.0, 4.5]}
    for day in range(3):
        got = {"gpp": [], "reco": []}
        for k in range(per_day):
            start = t0 + np.timedelta64((day * per_day + k) * step, "s")
            f = {"tas": np.array([tas_day[k]]), "rsds": np.array([0.6 * toa[k]]), "vpd": np.array([800.0]),
                 "pr": np.array([0.0])}
            acc.add(f, step, k == per_day - 1)
            trail.add(f, start, step)
            remaining = (per_day - k - 1) * step
            drift = 0.3 * np.sin(k / 5.0) if day == 2 and remaining else 0.0  # day 3: an estimate that moves
            est = {n: np.array([r[day] + drift]) for n, r in final.items()}
            trail.mean_to_come("tas", start + np.timedelta64(step, "s"), remaining, q10_weight, come)
            down.step(est["gpp"], est["reco"], f["rsds"], f["tas"], acc.running_sum_of("rsds"), acc.elapsed,
                      remaining, SECONDS_PER_DAY, start, step, gpp, reco, come)
            got["gpp"].append(gpp[0])
            got["reco"].append(reco[0])
        acc.reset()
        down.reset()
        for name in ("gpp", "reco"):
            assert np.sum(got[name]) * step / SECONDS_PER_DAY == pytest.approx(final[name][day], rel=1e-13)
        if day < 2:
            g = np.array(got["gpp"])
            assert np.all(g[toa == 0] < 0.05 * g.max()) and np.corrcoef(g, toa)[0, 1] > 0.97
        if day == 1:
            assert np.corrcoef(got["reco"], q10_weight(tas_day, np.zeros(per_day)))[0, 1] > 0.97


def test_subdaily_forcing_keeps_daily_means_and_follows_the_sun():
    lat, lon = np.array([50.96, -33.6, 0.0]), np.array([13.57, 150.7, -60.0])
    day, step = np.datetime64("2014-06-21"), 1800
    toa = subdaily.toa_steps(lat, lon, day, step)
    sw = subdaily.shortwave_steps(np.array([250.0, 80.0, 0.0]), toa)
    np.testing.assert_allclose(sw.mean(axis=0), [250.0, 80.0, 0.0], rtol=1e-13)
    assert np.all(sw[toa == 0] == 0.0)
    hours = subdaily.solar_hours(lon, day, step)
    dtr = subdaily.diurnal_temperature_range(np.array([0.7, 0.3, 0.5]), np.array([10.0, 2.0, 0.0]))
    assert np.all((dtr >= 1.0) & (dtr <= 25.0)) and dtr[0] > dtr[1]
    tas = subdaily.temperature_steps(np.array([290.0, 280.0, 300.0]), dtr, hours)
    np.testing.assert_allclose(tas.mean(axis=0), [290.0, 280.0, 300.0], rtol=0, atol=1e-12)
    warmest = hours[np.argmax(tas, axis=0), [0, 1, 2]]
    assert np.all(np.abs(warmest - 15.0) < 0.6)  # the maximum at 15 h local solar time
    vpd = subdaily.vpd_steps(np.array([12.0, 0.5, 0.0]), tas)
    np.testing.assert_allclose(vpd.mean(axis=0), [12.0, 0.5, 0.0], rtol=1e-12, atol=1e-15)
    assert np.all(vpd >= 0.0) and np.corrcoef(vpd[:, 0], tas[:, 0])[0, 1] > 0.9
    assert subdaily.steps_of_day(day, 10800).size == 8
    with pytest.raises(InputError, match="must divide a day"):
        subdaily.steps_of_day(day, 7000)
