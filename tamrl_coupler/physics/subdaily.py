"""Sub-daily forcing from daily means, shaped by solar geometry, each day's step mean exactly the daily value.

Why: a host calls the coupling component every 30 min to 3 h, but most tower records (FLUXNET DD files) and many
forcing products are daily. To run the component at a host's step on such data -- and to check that it reproduces
the daily model's own prediction -- the daily means are spread over the day's steps the way the sun and the
diurnal temperature cycle spread them, with the day's mean kept exactly (to rounding):

* shortwave follows the top-of-atmosphere insolation of each step: rsds_k = SW * toa_k / mean(toa) (constant SW
  when the sun never rises, which is then ~0 anyway);
* air temperature gets a cosine cycle of the day's diurnal range, peaking at 15 h local solar time, its discrete
  day mean removed, so the step mean is the daily mean;
* VPD follows the saturation vapour pressure of the step temperature at a constant vapour pressure e:
  vpd_k = es(T_k) - e with e = mean(es) - VPD (the daily VPD), cut at zero and scaled back to the daily mean;
* everything else (precipitation, longwave, pressure, wind, CO2, land cover) is held at its daily value.

The diurnal temperature range of a day without sub-daily data is the FLUXNET DD reader's regression on clearness
and VPD (:func:`diurnal_temperature_range`).
"""

from __future__ import annotations

import numpy as np

from tamrl_coupler.constants import SECONDS_PER_DAY, ZERO_CELSIUS
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.humidity import saturation_vapour_pressure_hpa
from tamrl_coupler.physics.solar import equation_of_time_minutes, mean_toa_insolation

# DTR [K] = a + b * clearness + c * ln(1 + VPD [hPa]); least squares on the 160 FluxVal sites (RMSE 1.6 K)
DTR_COEFFS = (-4.91, 15.83, 1.585)
DTR_LIMITS = (1.0, 25.0)  # K
PEAK_SOLAR_HOUR = 15.0  # local solar time of the daily temperature maximum


def diurnal_temperature_range(clearness: np.ndarray, vpd_hpa: np.ndarray) -> np.ndarray:
    """Estimated diurnal temperature range [K] of a day from its clearness (SW / SW_toa, 0-1) and mean VPD [hPa]."""
    k = np.clip(clearness, 0.0, 1.0)
    dtr = DTR_COEFFS[0] + DTR_COEFFS[1] * k + DTR_COEFFS[2] * np.log1p(np.maximum(vpd_hpa, 0.0))
    return np.clip(dtr, *DTR_LIMITS)


def steps_of_day(day: np.datetime64, step: int) -> np.ndarray:
    """Start times (datetime64[s], UTC) of the ``step``-second steps of ``day``; the step must divide a day."""
    if step <= 0 or SECONDS_PER_DAY % step:
        raise InputError(f"sub-daily step {step} s must divide a day ({SECONDS_PER_DAY} s)")
    start = np.datetime64(day, "D").astype("datetime64[s]")
    return start + np.arange(SECONDS_PER_DAY // step) * np.timedelta64(step, "s")


def toa_steps(lat: np.ndarray, lon: np.ndarray, day: np.datetime64, step: int) -> np.ndarray:
    """Top-of-atmosphere insolation [W m-2], mean over each step of ``day``: (n_steps, n_cells)."""
    return np.stack([mean_toa_insolation(lat, lon, t, step, samples=6) for t in steps_of_day(day, step)])


def shortwave_steps(daily_mean: np.ndarray, toa: np.ndarray) -> np.ndarray:
    """Step shortwave (n_steps, n_cells) following ``toa`` (from :func:`toa_steps`), day mean = ``daily_mean``."""
    mean_toa = toa.mean(axis=0)
    sunlit = mean_toa > 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        shaped = daily_mean * toa / mean_toa
    return np.where(sunlit, shaped, np.broadcast_to(daily_mean, toa.shape))


def solar_hours(lon: np.ndarray, day: np.datetime64, step: int) -> np.ndarray:
    """Local apparent solar time [h] at the middle of each step of ``day``: (n_steps, n_cells)."""
    starts = steps_of_day(day, step)
    utc = (np.arange(starts.size) + 0.5) * step / 3600.0
    doy = float((np.datetime64(day, "D") - np.datetime64(day, "Y").astype("datetime64[D]")).astype(np.int64)) + 1.0
    eot = equation_of_time_minutes(doy + utc / 24.0) / 60.0
    return (utc[:, None] + eot[:, None] + np.asarray(lon, dtype=np.float64)[None, :] / 15.0) % 24.0


def temperature_steps(daily_mean: np.ndarray, dtr: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """Step temperature (n_steps, n_cells): a cosine cycle of range ``dtr`` peaking at 15 h solar time (``hours``
    from :func:`solar_hours`) whose step mean is exactly zero, added to ``daily_mean`` (any unit of temperature)."""
    shape = np.cos(2.0 * np.pi * (hours - PEAK_SOLAR_HOUR) / 24.0)
    shape -= shape.mean(axis=0)
    return daily_mean + 0.5 * dtr * shape


def vpd_steps(daily_vpd: np.ndarray, t_steps_kelvin: np.ndarray) -> np.ndarray:
    """Step VPD [hPa] (n_steps, n_cells) for the day's VPD ``daily_vpd`` [hPa] and step temperatures [K]: the
    shape es(T_k) - e at the constant vapour pressure e = mean(es) - VPD (es(T_k) where that e would be negative),
    negative values (dew at the coldest steps) cut at zero, scaled so that the step mean is the daily VPD."""
    es = saturation_vapour_pressure_hpa(t_steps_kelvin - ZERO_CELSIUS)
    e = es.mean(axis=0) - daily_vpd
    shape = np.where(e >= 0.0, np.maximum(es - np.maximum(e, 0.0), 0.0), es)
    mean_shape = shape.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = daily_vpd * shape / mean_shape
    return np.where(mean_shape > 0.0, out, np.broadcast_to(daily_vpd, es.shape))


__all__ = ["DTR_COEFFS", "diurnal_temperature_range", "shortwave_steps", "solar_hours", "steps_of_day",
           "temperature_steps", "toa_steps", "vpd_steps"]
