"""A climatological year from monthly normals: smooth days that keep every monthly mean exactly, and sub-daily
steps whose daily means are those days.

Why these constructions (the global test bed, docs/testbed.md):

* **Days**: a mean-preserving interpolation (piecewise linear between mid-month nodes whose values are solved so
  that each month's mean is the normal's, exactly); non-negative quantities are clipped at zero and rescaled per
  month, which keeps the monthly means. Shortwave is interpolated as a transmissivity (shortwave over
  top-of-atmosphere insolation) and multiplied by each day's insolation, so the light follows the sun near the
  polar night instead of a straight line through it.
* **Diurnal temperature**: a cosine between the day's minimum and maximum, warmest at 15 h local solar time; its
  step means over a day average to the day's mean exactly.
* **Vapour pressure deficit** is the mean over the day of es(T(t)) - e, the way towers' VPD_F (a mean of half-hourly
  VPD) and FAO-56's (es(Tmax) + es(Tmin)) / 2 - e behave; es(Tmean) - e would be lower, since es is convex.
* **Weather** (:func:`synthetic_weather`): a real day is wet or dry, cloudy or clear. Wet days (their number from
  the monthly amount), exponential rain amounts, darker and more humid wet days, and day-to-day anomalies of light,
  VPD and temperature, each measured on the shared daily towers, with every monthly mean kept exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tamrl_coupler.physics.humidity import saturation_vapour_pressure_hpa
from tamrl_coupler.physics.solar import daily_mean_toa_insolation

DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])  # a 365-day year
WARMEST_HOUR = 15.0  # local solar time of the diurnal temperature maximum


def month_of_day_index(days_in_month: np.ndarray = DAYS_IN_MONTH) -> np.ndarray:
    """(365,) month index 0..11 of each day of the year."""
    return np.repeat(np.arange(12), days_in_month)


def interpolation_matrix(days_in_month: np.ndarray = DAYS_IN_MONTH) -> np.ndarray:
    """(n_days, 12) matrix M with daily = M @ monthly: piecewise linear between mid-month nodes (periodic), the
    node values solved so that each month's mean of the days is the monthly value exactly."""
    n = int(days_in_month.sum())
    start = np.concatenate([[0], np.cumsum(days_in_month)[:-1]])
    mid = start + days_in_month / 2.0  # node positions (days from the year's start)
    centre = np.arange(n) + 0.5
    # B: days from nodes (periodic linear interpolation)
    b = np.zeros((n, 12))
    for d, t in enumerate(centre):
        k = int(np.searchsorted(mid, t, side="right")) - 1  # the node at or before t (-1: before the first)
        t0 = mid[k] if k >= 0 else mid[-1] - n
        k1 = (k + 1) % 12
        t1 = mid[k1] if k + 1 < 12 else mid[0] + n
        w = (t - t0) / (t1 - t0)
        b[d, k % 12] += 1.0 - w
        b[d, k1] += w
    month = month_of_day_index(days_in_month)
    a = np.stack([b[month == m].mean(axis=0) for m in range(12)])  # monthly means of the days per unit node
    return b @ np.linalg.inv(a)


def monthly_to_daily(monthly: np.ndarray, non_negative: bool = False,
                     days_in_month: np.ndarray = DAYS_IN_MONTH) -> np.ndarray:
    """(12, ...) monthly means -> (365, ...) smooth days with the same monthly means. ``non_negative``: clip at 0
    and rescale each month to its mean again (a month whose mean is 0 stays 0)."""
    m = np.asarray(monthly, dtype=np.float64)
    flat = m.reshape(12, -1)
    daily = interpolation_matrix(days_in_month) @ flat
    if non_negative:
        daily = np.maximum(daily, 0.0)
        month = month_of_day_index(days_in_month)
        for k in range(12):
            rows = month == k
            total = daily[rows].sum(axis=0)
            want = flat[k] * days_in_month[k]
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = np.where(total > 0, want / total, 0.0)
            daily[rows] *= scale
    return daily.reshape((daily.shape[0], *m.shape[1:]))


def daily_shortwave(monthly_rad: np.ndarray, lat: np.ndarray, days_in_month: np.ndarray = DAYS_IN_MONTH
                    ) -> np.ndarray:
    """(12, n) monthly-mean shortwave [W m-2] at latitudes (n,) -> (365, n) days: the transmissivity interpolated
    and times each day's top-of-atmosphere insolation, then each month rescaled to its normal exactly."""
    doy = np.arange(int(days_in_month.sum())) + 1.0
    toa = daily_mean_toa_insolation(np.asarray(lat)[None, :], doy[:, None])  # (365, n)
    month = month_of_day_index(days_in_month)
    toa_month = np.stack([toa[month == k].mean(axis=0) for k in range(12)])
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(toa_month > 0, monthly_rad / toa_month, np.nan)
    # months of polar night carry no transmissivity: take the nearest sunlit month's (for the interpolation only)
    tau = _fill_cyclic(tau)
    day = np.maximum(monthly_to_daily(tau), 0.0) * toa
    for k in range(12):
        rows = month == k
        total = day[rows].sum(axis=0)
        want = monthly_rad[k] * days_in_month[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            day[rows] *= np.where(total > 0, want / total, 0.0)
    return day


def _fill_cyclic(x: np.ndarray) -> np.ndarray:
    """NaN months (12, n) from the nearest finite month (cyclic); columns without any finite month -> 0."""
    out = x.copy()
    for shift in range(1, 7):
        for s in (shift, -shift):
            gap = np.isnan(out)
            if not gap.any():
                return out
            out[gap] = np.roll(x, s, axis=0)[gap]
    return np.nan_to_num(out, nan=0.0)


@dataclass(frozen=True)
class WeatherParameters:
    """Day-to-day weather of :func:`synthetic_weather`, each number measured on the shared daily towers (the
    median over site-months of FLUXNET2015/ICOS daily files, ``scripts/testbed_weather.py`` ->
    results/testbed_weather.md)."""

    wet_scale_mm: float = 145.0  # wet days (>= 1 mm): fraction 1 - exp(-monthly total / wet_scale_mm)
    wet_ratio_base: float = 0.62  # shortwave and VPD of a wet day over the month's mean: base + slope * wet fraction
    wet_ratio_slope: float = 0.30
    sw_sigma: float = 0.29  # multiplicative (log-normal) day-to-day noise of shortwave beyond the wet/dry contrast
    vpd_sigma: float = 0.41
    t_sd: float = 2.5  # degC, day-to-day temperature anomalies
    sw_rho: float = 0.35  # lag-1 autocorrelation of the day-to-day anomalies
    vpd_rho: float = 0.55
    t_rho: float = 0.7
    rain_rho: float = 0.4  # lag-1 autocorrelation of the latent rain variable (wet spells)
    common: float = 0.7  # loading of the shared "fair weather" factor on shortwave, VPD and temperature anomalies
    seed: int = 20240917


def _ar1(rng: np.random.Generator, n_days: int, n: int, rho: float) -> np.ndarray:
    """(n_days, n) unit-variance AR(1) series."""
    e = rng.standard_normal((n_days, n))
    out = np.empty_like(e)
    out[0] = e[0]
    s = np.sqrt(1.0 - rho * rho)
    for d in range(1, n_days):
        out[d] = rho * out[d - 1] + s * e[d]
    return out


def _month_normalise(values: np.ndarray, target: np.ndarray, days_in_month: np.ndarray) -> np.ndarray:
    """Scale each month of ``values`` (365, n) so that its sum is ``target``'s (365, n) sum (0 stays 0)."""
    month = month_of_day_index(days_in_month)
    out = values.copy()
    for k in range(12):
        rows = month == k
        have, want = values[rows].sum(axis=0), target[rows].sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[rows] *= np.where(have > 0, want / have, 0.0)
    return out


def _capped_month_normalise(values: np.ndarray, target: np.ndarray, cap: np.ndarray,
                            days_in_month: np.ndarray, rounds: int = 8) -> np.ndarray:
    """:func:`_month_normalise`, then days above ``cap`` held at it and the others rescaled to keep the month's sum
    (a few rounds; exact unless the cap cannot hold the month's mean at all)."""
    month = month_of_day_index(days_in_month)
    out = _month_normalise(values, target, days_in_month)
    for _ in range(rounds):
        over = out > cap
        if not over.any():
            break
        out = np.minimum(out, cap)
        for k in range(12):
            rows = month == k
            free = ~over[rows] & (out[rows] < cap[rows])
            have_free = np.where(free, out[rows], 0.0).sum(axis=0)
            need = target[rows].sum(axis=0) - np.where(free, 0.0, out[rows]).sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = np.where(have_free > 0, need / have_free, 1.0)
            out[rows] = np.where(free, out[rows] * scale, out[rows])
    return np.minimum(out, cap)


def synthetic_weather(days: dict[str, np.ndarray], monthly_precip: np.ndarray,
                      params: WeatherParameters = WeatherParameters(), caps: dict[str, np.ndarray] | None = None,
                      days_in_month: np.ndarray = DAYS_IN_MONTH) -> dict[str, np.ndarray]:
    """Weather on smooth climatological days: ``days`` tmean [degC], swdown, vpd (365, n) from :func:`monthly_to_daily`
    and :func:`daily_shortwave`, ``monthly_precip`` (12, n) [mm d-1] -> (365, n) days of tmean, swdown, vpd, precip
    with every monthly mean kept exactly (shortwave, VPD and precipitation by month-wise rescaling, temperature
    anomalies made zero-mean per month), but days that are wet or dry, cloudy or clear, as real days are.
    ``caps``: (365, n) upper bounds of ``swdown`` (a clear sky's share of the insolation) and ``vpd`` (the air
    cannot be drier than dry) that no day exceeds (the month's mean is kept).

    Why: the model was trained on real days; on days without weather (every day the month's mean light, VPD and a
    little rain) it is outside what it has seen, and at the towers it then gives 22 % more GPP than on their real
    days (docs/testbed.md). Deterministic: one seeded generator (``params.seed``) draws every cell's weather."""
    p = params
    n_days, n = days["tmean"].shape
    rng = np.random.default_rng(p.seed)
    month = month_of_day_index(days_in_month)
    # wet days: the month's w days with the highest latent value (spells), amounts by exponential quantiles
    latent = _ar1(rng, n_days, n, p.rain_rho)
    precip = np.zeros((n_days, n))
    wet = np.zeros((n_days, n), dtype=bool)
    frac = np.zeros((n_days, n))
    for k in range(12):
        rows = np.flatnonzero(month == k)
        n_k = rows.size
        total = np.asarray(monthly_precip[k], dtype=np.float64) * n_k
        w = np.where(total > 0, np.clip(np.round(n_k * (1.0 - np.exp(-total / p.wet_scale_mm))), 1, n_k), 0)
        rank = np.argsort(np.argsort(-latent[rows], axis=0), axis=0)  # 0 = the highest latent value of the month
        is_wet = rank < w[None, :]
        q = np.where(is_wet, -np.log((rank + 0.5) / np.maximum(w, 1)[None, :]), 0.0)  # exponential quantiles
        with np.errstate(divide="ignore", invalid="ignore"):
            precip[rows] = np.where(q.sum(axis=0) > 0, q * (total / q.sum(axis=0)), 0.0)
        wet[rows] = is_wet
        frac[rows] = (w / n_k)[None, :]
    # a shared fair-weather factor: clear, dry, warm days together
    common = _ar1(rng, n_days, n, 0.5)
    spare = np.sqrt(1.0 - p.common * p.common)
    ratio = p.wet_ratio_base + p.wet_ratio_slope * frac  # a wet day's share of the month's mean
    with np.errstate(divide="ignore", invalid="ignore"):
        dry = np.where(frac < 1.0, (1.0 - frac * ratio) / (1.0 - frac), 1.0)
    state = np.where(wet, ratio, dry)
    out = {"precip": precip}
    for name, sigma, rho in (("swdown", p.sw_sigma, p.sw_rho), ("vpd", p.vpd_sigma, p.vpd_rho)):
        z = p.common * common + spare * _ar1(rng, n_days, n, rho)
        noisy = days[name] * state * np.exp(sigma * z - 0.5 * sigma * sigma)
        if caps and name in caps:
            out[name] = _capped_month_normalise(noisy, days[name], caps[name], days_in_month)
        else:
            out[name] = _month_normalise(noisy, days[name], days_in_month)
    t_anom = p.t_sd * (p.common * common + spare * _ar1(rng, n_days, n, p.t_rho))
    for k in range(12):
        rows = month == k
        t_anom[rows] -= t_anom[rows].mean(axis=0)
    out["tmean"] = days["tmean"] + t_anom
    return out


def diurnal_temperature(t_mean: np.ndarray, t_range: np.ndarray, lon: np.ndarray, step_hours: float = 3.0
                        ) -> np.ndarray:
    """Step-mean temperatures (n_steps, ...) of one day from its mean and range (...), steps from 00 UTC: a cosine
    warmest at ``WARMEST_HOUR`` local solar time (from the longitude). The steps average to ``t_mean`` exactly
    (up to rounding) since they tile the day."""
    n_steps = int(round(24.0 / step_hours))
    start = np.arange(n_steps) * step_hours
    centre_local = (start + step_hours / 2.0)[:, None] + np.asarray(lon, dtype=np.float64).ravel()[None, :] / 15.0
    phase = 2.0 * np.pi * (centre_local - WARMEST_HOUR) / 24.0
    half = np.pi * step_hours / 24.0  # mean of cos over a step = cos(centre) * sin(half) / half
    shape = np.cos(phase) * (np.sin(half) / half)
    amp = np.asarray(t_range, dtype=np.float64).reshape(1, -1) / 2.0
    out = np.asarray(t_mean, dtype=np.float64).reshape(1, -1) + amp * shape
    return out.reshape((n_steps, *np.shape(t_mean)))


def day_mean_vpd(t_steps: np.ndarray, vapour_pressure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """VPD [hPa] of each step (n_steps, ...) from step temperatures [degC] and the day's vapour pressure [hPa]
    (vapour pressure held through the day, VPD >= 0), and the day's mean of them."""
    es = saturation_vapour_pressure_hpa(np.asarray(t_steps, dtype=np.float64))
    steps = np.maximum(es - np.asarray(vapour_pressure, dtype=np.float64)[None], 0.0)
    return steps, steps.mean(axis=0)


def vapour_pressure_for_vpd(t_steps: np.ndarray, vpd: np.ndarray, iterations: int = 60) -> np.ndarray:
    """The vapour pressure e >= 0 [hPa], held through the day, whose steps' mean of max(es(T_k) - e, 0) is ``vpd``
    (n,) at step temperatures ``t_steps`` (n_steps, n) [degC] (bisection; e = 0 where even dry air has less)."""
    es = saturation_vapour_pressure_hpa(np.asarray(t_steps, dtype=np.float64))
    lo, hi = np.zeros(es.shape[1]), es.max(axis=0)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        too_humid = np.maximum(es - mid[None, :], 0.0).mean(axis=0) < vpd
        hi = np.where(too_humid, mid, hi)
        lo = np.where(too_humid, lo, mid)
    return 0.5 * (lo + hi)


def vpd_of_mean_temperature(t_mean: np.ndarray, vapour_pressure: np.ndarray) -> np.ndarray:
    """es(Tmean) - e [hPa], >= 0: a daily forcing without the diurnal cycle (lower than the day's mean VPD)."""
    return np.maximum(saturation_vapour_pressure_hpa(np.asarray(t_mean, dtype=np.float64)) - vapour_pressure, 0.0)


def fao56_vpd(t_min: np.ndarray, t_max: np.ndarray, vapour_pressure: np.ndarray) -> np.ndarray:
    """FAO-56 daily VPD [hPa]: (es(Tmax) + es(Tmin)) / 2 - e, >= 0."""
    es = (saturation_vapour_pressure_hpa(np.asarray(t_max, dtype=np.float64))
          + saturation_vapour_pressure_hpa(np.asarray(t_min, dtype=np.float64))) / 2.0
    return np.maximum(es - vapour_pressure, 0.0)


__all__ = ["DAYS_IN_MONTH", "WARMEST_HOUR", "WeatherParameters", "daily_shortwave", "day_mean_vpd",
           "diurnal_temperature", "fao56_vpd", "interpolation_matrix", "month_of_day_index", "monthly_to_daily",
           "synthetic_weather", "vapour_pressure_for_vpd", "vpd_of_mean_temperature"]
