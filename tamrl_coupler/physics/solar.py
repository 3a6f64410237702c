"""Solar geometry: where the sun is, so that shortwave and GPP can follow the diurnal cycle.

Used to give sub-daily forcing a diurnal shortwave cycle (the demo forcing from one GLDAS snapshot, towers' daily
met), and by the sub-period downscaling to estimate how much light is still to come in a period (top-of-atmosphere
insolation times the transmissivity seen so far; the rest of the current day integrated exactly). Formulas:
Spencer (1971) declination and equation of time, eccentricity factor.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from tamrl_coupler.constants import SECONDS_PER_DAY

SOLAR_CONSTANT = 1361.0  # W m-2


def _day_angle(day_of_year: np.ndarray | float) -> np.ndarray:
    return 2.0 * np.pi * (np.asarray(day_of_year, dtype=np.float64) - 1.0) / 365.0


def declination(day_of_year: ArrayLike) -> np.ndarray:
    """Solar declination [rad] (Spencer 1971); ``day_of_year`` is 1-based and may be fractional."""
    g = _day_angle(day_of_year)
    return (0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g) - 0.006758 * np.cos(2 * g)
            + 0.000907 * np.sin(2 * g) - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g))


def equation_of_time_minutes(day_of_year: ArrayLike) -> np.ndarray:
    """Apparent minus mean solar time [min] (Spencer 1971): where the sun is at a given UTC hour."""
    g = _day_angle(day_of_year)
    return 229.18 * (0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g) - 0.014615 * np.cos(2 * g)
                     - 0.040849 * np.sin(2 * g))


def eccentricity_factor(day_of_year: ArrayLike) -> np.ndarray:
    """(r0/r)^2, the Earth-Sun distance correction of the solar constant."""
    g = _day_angle(day_of_year)
    return (1.000110 + 0.034221 * np.cos(g) + 0.001280 * np.sin(g) + 0.000719 * np.cos(2 * g)
            + 0.000077 * np.sin(2 * g))


def day_of_year_and_utc_hours(time: np.datetime64 | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split datetime64 values into (1-based day of year as float, UTC hours)."""
    t = np.asarray(time, dtype="datetime64[s]")
    year_start = t.astype("datetime64[Y]").astype("datetime64[s]")
    seconds = (t - year_start).astype(np.int64).astype(np.float64)
    doy = np.floor(seconds / SECONDS_PER_DAY) + 1.0
    hours = (seconds % SECONDS_PER_DAY) / 3600.0
    return doy, hours


def cos_zenith(lat_deg: ArrayLike, lon_deg: ArrayLike, time: np.datetime64 | np.ndarray) -> np.ndarray:
    """Cosine of the solar zenith angle at ``time`` (datetime64), clipped at 0 (sun below horizon)."""
    doy, hours = day_of_year_and_utc_hours(time)
    frac_doy = doy + hours / 24.0
    dec = declination(frac_doy)
    solar_time_h = hours + (np.asarray(lon_deg, dtype=np.float64) / 15.0) + equation_of_time_minutes(frac_doy) / 60.0
    hour_angle = np.deg2rad(15.0 * (solar_time_h - 12.0))
    phi = np.deg2rad(np.asarray(lat_deg, dtype=np.float64))
    mu = np.sin(phi) * np.sin(dec) + np.cos(phi) * np.cos(dec) * np.cos(hour_angle)
    return np.maximum(mu, 0.0)


def mean_toa_insolation(lat_deg: ArrayLike, lon_deg: ArrayLike, start: np.datetime64, seconds: float,
                        samples: int = 12) -> np.ndarray:
    """Mean top-of-atmosphere insolation [W m-2] over ``[start, start + seconds)`` (midpoint rule, ``samples``)."""
    offsets = (np.arange(samples) + 0.5) * (seconds / samples)
    acc = np.zeros(np.broadcast(np.asarray(lat_deg), np.asarray(lon_deg)).shape, dtype=np.float64)
    for off in offsets:
        t = np.datetime64(start, "ms") + np.timedelta64(int(round(off * 1000.0)), "ms")
        doy, _ = day_of_year_and_utc_hours(t)
        acc += SOLAR_CONSTANT * eccentricity_factor(doy) * cos_zenith(lat_deg, lon_deg, t)
    return acc / samples


def daily_mean_toa_insolation(lat_deg: ArrayLike, day_of_year: ArrayLike) -> np.ndarray:
    """Daily-mean top-of-atmosphere insolation [W m-2] at latitude ``lat_deg`` (analytic, handles polar day/night)."""
    phi = np.deg2rad(np.asarray(lat_deg, dtype=np.float64))
    dec = declination(day_of_year)
    x = np.clip(-np.tan(phi) * np.tan(dec), -1.0, 1.0)
    h0 = np.arccos(x)  # sunset hour angle: 0 = polar night, pi = polar day
    q = SOLAR_CONSTANT * eccentricity_factor(day_of_year) / np.pi * (
        h0 * np.sin(phi) * np.sin(dec) + np.cos(phi) * np.cos(dec) * np.sin(h0))
    return np.maximum(q, 0.0)


class ToaInsolation:
    """:func:`mean_toa_insolation` for fixed cells, without allocating: the coupling loop calls it every step.

    The cells' trigonometry is computed once; each call works in preallocated buffers with the same operations in
    the same order as :func:`cos_zenith`, so the values are bit for bit those of :func:`mean_toa_insolation`.
    """

    def __init__(self, lat_deg: np.ndarray, lon_deg: np.ndarray):
        lat = np.asarray(lat_deg, dtype=np.float64)
        lon = np.asarray(lon_deg, dtype=np.float64)
        phi = np.deg2rad(lat)
        self.sin_phi = np.sin(phi)
        self.cos_phi = np.cos(phi)
        self.lon_hours = lon / 15.0
        self._a = np.zeros(lat.shape)
        self._b = np.zeros(lat.shape)
        self._h1, self._h2, self._h0, self._lo, self._hi, self._t, self._base = (np.zeros(lat.shape)
                                                                                for _ in range(7))

    def mean(self, start: np.datetime64, seconds: float, samples: int, out: np.ndarray) -> np.ndarray:
        """Mean insolation [W m-2] over ``[start, start + seconds)`` into ``out`` (midpoint rule, ``samples``)."""
        a, b = self._a, self._b
        out.fill(0.0)
        for off in (np.arange(samples) + 0.5) * (seconds / samples):
            t = np.datetime64(start, "ms") + np.timedelta64(int(round(off * 1000.0)), "ms")
            doy, hours = day_of_year_and_utc_hours(t)
            frac_doy = doy + hours / 24.0
            dec = declination(frac_doy)
            np.add(hours, self.lon_hours, out=a)  # solar time [h]
            a += equation_of_time_minutes(frac_doy) / 60.0
            a -= 12.0
            a *= 15.0
            np.deg2rad(a, out=a)  # hour angle
            np.cos(a, out=a)
            np.multiply(self.cos_phi, np.cos(dec), out=b)
            b *= a
            np.multiply(self.sin_phi, np.sin(dec), out=a)
            a += b
            np.maximum(a, 0.0, out=a)  # cos(zenith)
            a *= SOLAR_CONSTANT * eccentricity_factor(doy)
            out += a
        out /= samples
        return out

    def integral(self, start: np.datetime64, seconds: float, out: np.ndarray) -> np.ndarray:
        """Insolation integrated over ``[start, start + seconds)`` [J m-2] into ``out``, for ``seconds`` up to one
        day: the cosine of the zenith angle integrated analytically over the hour angle (declination, equation of
        time and Earth-Sun distance taken at the interval's middle), so no sampling error at sunrise and sunset."""
        if not 0.0 <= seconds <= SECONDS_PER_DAY:
            raise ValueError(f"insolation integral over {seconds} s: at most one day")
        out.fill(0.0)
        if seconds == 0.0:
            return out
        mid = np.datetime64(start, "ms") + np.timedelta64(int(round(seconds * 500.0)), "ms")
        doy, hours = day_of_year_and_utc_hours(mid)
        frac_doy = doy + hours / 24.0
        dec = declination(frac_doy)
        _, start_hours = day_of_year_and_utc_hours(np.datetime64(start, "s"))
        h1, a, b, h0, lo, hi = self._h1, self._a, self._b, self._h0, self._lo, self._hi
        np.add(self.lon_hours, start_hours + equation_of_time_minutes(frac_doy) / 60.0 - 12.0, out=h1)
        h1 *= 2.0 * np.pi / 24.0  # hour angle at the start [rad]
        h2 = self._h2
        np.add(h1, 2.0 * np.pi * seconds / SECONDS_PER_DAY, out=h2)  # at the end
        np.multiply(self.sin_phi, np.sin(dec), out=a)  # cos(zenith) = a + b cos(hour angle)
        np.multiply(self.cos_phi, np.cos(dec), out=b)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(a, b, out=h0)
        np.negative(h0, out=h0)
        np.nan_to_num(h0, copy=False, nan=-1.0, posinf=1.0, neginf=-1.0)
        np.clip(h0, -1.0, 1.0, out=h0)
        np.arccos(h0, out=h0)  # half the daylight span in hour angle: 0 polar night, pi polar day
        base = self._base
        np.add(h1, np.pi, out=base)
        base /= 2.0 * np.pi
        np.floor(base, out=base)  # the solar day (noon at 2 pi k) holding the start
        for k in (0.0, 1.0):  # an interval of at most a day meets at most this day's and the next day's daylight
            np.add(base, k, out=lo)
            lo *= 2.0 * np.pi
            np.add(lo, h0, out=hi)
            lo -= h0
            np.maximum(lo, h1, out=lo)
            np.minimum(hi, h2, out=hi)
            np.maximum(hi, lo, out=hi)  # empty where the window misses the interval
            np.subtract(hi, lo, out=self._t)
            self._t *= a
            out += self._t
            np.sin(hi, out=hi)
            np.sin(lo, out=lo)
            hi -= lo
            hi *= b
            out += hi
        out *= SOLAR_CONSTANT * eccentricity_factor(doy) * SECONDS_PER_DAY / (2.0 * np.pi)
        return out
